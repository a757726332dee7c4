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
