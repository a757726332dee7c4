"""`convert aliexpress`: MTReclib's processed CSV (real sample) and the raw user/item join (hand-written rows)."""

import csv

import pytest
import tensorflow as tf

from tests.data.convert.conftest import item_row, read_records, user_row
from tfcvr.data.convert import aliexpress, cli

SEARCH_ID = {"search_id": tf.io.FixedLenFeature([], tf.int64)}


def test_processed_sample(tmp_path, shared_data):
    path = shared_data / "aliexpress" / "torch-rechub" / "aliexpress_train_sample.csv"
    out = tmp_path / "ae"
    report = cli.main(
        ["aliexpress", "--input", str(path), "--out", str(out), "--num_shards=2", "--quiet", "--runner=InProcess"]
    )
    assert report["rows_read"] == report["rows_written"] == 100
    schema, records = read_records(out, extra=SEARCH_ID)
    assert len(schema.categorical) == 16 and len(schema.numeric) == 63 and "search_id" not in schema.feature_names
    assert sum(r["click"] for r in records) == 60 and sum(r["conversion"] for r in records) == 2
    assert len({r["search_id"] for r in records}) == 41
    with open(path) as f:
        rows = list(csv.DictReader(f))
    expected = sorted((int(r["search_id"]), int(r["categorical_7"]), float(r["numerical_63"])) for r in rows)
    actual = sorted((r["search_id"], r["categorical_7"], r["numerical_63"]) for r in records)
    assert [a[:2] for a in actual] == [e[:2] for e in expected]
    assert [a[2] for a in actual] == pytest.approx([e[2] for e in expected])


def test_raw_user_item_join(tmp_path):
    user = tmp_path / "nl_user_train.csv"
    item = tmp_path / "nl_item_train.csv"
    user.write_text("\n".join(",".join(user_row(s)) for s in (11, 12)) + "\n")
    items = [
        item_row(11, 0),
        item_row(11, 2),
        item_row(12, 1),
        item_row(99, 1),
        item_row(12, 3),
        item_row(12, 1)[:-2],
    ]
    item.write_text("\n".join(",".join(r) for r in items) + "\n")
    out = tmp_path / "raw"
    report = cli.main(
        [
            "aliexpress",
            "--item",
            str(item),
            "--user",
            str(user),
            "--out",
            str(out),
            "--num_shards=1",
            "--max_errors=2",
            "--quiet",
            "--runner=InProcess",
        ]
    )
    assert report["rows_read"] == 6 and report["rows_written"] == 3
    assert report["dropped_by_reason"] == {"missing_user_features": 1, "malformed": 2}
    assert report["malformed_examples"][0].startswith(f"{item}:5: label column 'label' must be 0 (impression)")
    assert "expected 49 comma-separated fields in an item row, found 47" in report["malformed_examples"][1]
    schema, records = read_records(out, extra=SEARCH_ID)
    assert schema.feature_names == tuple(
        [f"categorical_{i}" for i in range(1, 17)] + [f"numerical_{i}" for i in range(1, 64)]
    )
    assert [(r["search_id"], r["click"], r["conversion"]) for r in records] == [(11, 0, 0), (11, 1, 1), (12, 1, 0)]
    first = records[0]
    assert first["categorical_1"] == 102 and first["categorical_7"] == 108  # user_2, user_8
    assert first["categorical_8"] == 32 and first["categorical_9"] == 33  # user_32, user_33
    assert first["categorical_10"] == 1019 and first["categorical_16"] == 1042  # item_19, item_42
    assert first["numerical_1"] == pytest.approx(0.9) and first["numerical_23"] == pytest.approx(0.31)
    assert first["numerical_24"] == pytest.approx(0.52)  # item_2
    assert first["numerical_41"] == pytest.approx(0.520)  # item_20 (item_19 is categorical)
    assert first["numerical_63"] == pytest.approx(0.548)  # item_48
    assert len(aliexpress.COLUMN_SOURCES) == 1 + 16 + 63


def test_raw_needs_both_files(tmp_path):
    with pytest.raises(SystemExit, match="give --input .* or --item and --user"):
        cli.main(["aliexpress", "--item", str(tmp_path / "i.csv"), "--out", str(tmp_path / "o")])
