"""Paths of the real dataset samples (../shared/data, never shipped) and reading converted records back."""

import os
import pathlib

import pytest
import tensorflow as tf

from tfcvr.data import schema as schema_lib
from tfcvr.data import transform

_CANDIDATES = [
    os.environ.get("TFCVR_SHARED_DATA", ""),
    str(pathlib.Path(__file__).resolve().parents[4] / "shared" / "data"),
    "/work/shared/data",
]


@pytest.fixture(scope="session")
def shared_data():
    """The folder of real samples (README/FORMATS.md of ../shared/data); TFCVR_SHARED_DATA overrides."""
    for candidate in _CANDIDATES:
        if candidate and os.path.isdir(os.path.join(candidate, "ali-ccp")):
            return pathlib.Path(candidate)
    pytest.skip(f"The real data samples are not on this machine (looked in {[c for c in _CANDIDATES if c]}).")


def read_records(out_dir, split="train", extra=None):
    """(schema, [dict per record]) of a conversion: features parsed with the schema's spec, lists as python lists."""
    schema = schema_lib.load_schema(os.path.join(str(out_dir), "schema.json"))
    spec = {**transform.feature_spec(schema), **transform.label_spec(schema), **(extra or {})}
    files = sorted(tf.io.gfile.glob(os.path.join(str(out_dir), f"{split}-*.tfrecord")))
    records = []
    for serialized in tf.data.TFRecordDataset(files):
        parsed = tf.io.parse_single_example(serialized, spec)
        record = {}
        for key, value in parsed.items():
            value = value.values if isinstance(value, tf.SparseTensor) else value
            value = value.numpy()
            value = value.tolist() if hasattr(value, "tolist") else value
            record[key] = (
                [v.decode() if isinstance(v, bytes) else v for v in value]
                if isinstance(value, list)
                else (value.decode() if isinstance(value, bytes) else value)
            )
        records.append(record)
    return schema, records


def user_row(search_id):
    """A raw AliExpress user row (33 columns) of one search page."""
    # user_1 = search id, user_2..user_8 and user_32, user_33 categorical, user_9..user_31 numerical.
    return [str(search_id)] + [str(100 + i) for i in range(2, 9)] + [f"0.{i}" for i in range(9, 32)] + ["32", "33"]


def item_row(search_id, label):
    """A raw AliExpress item row (49 columns) with its funnel label."""
    row = [str(search_id)] + [f"0.5{i}" for i in range(2, 49)] + [str(label)]
    for column in (19, 34, 35, 36, 40, 41, 42):  # categorical item columns hold ids
        row[column - 1] = str(1000 + column)
    return row
