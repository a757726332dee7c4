"""`convert csv`: any CSV/Parquet log, and the presets on the real torch-rechub and PaddleRec AITM samples."""

import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from tests.data.convert.conftest import read_records
from tfcvr.data.convert import cli

LOG_FLAGS = [
    "--label_click=clicked",
    "--label_conversion=bought",
    "--categorical=user_id",
    "--categorical_string=category",
    "--categorical_list=history",
    "--numeric=price",
    "--num_shards=1",
    "--quiet",
    "--runner=InProcess",
]
HEADER = "user_id,category,history,price,clicked,bought\n"


def _convert(tmp_path, source, *flags):
    out = tmp_path / "out"
    return out, cli.main(["csv", "--input", str(source), "--out", str(out), *LOG_FLAGS, *flags])


def test_csv_log_round_trips(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text(HEADER + "7,shoes,1|2|3,9.5,1,1\n8,hats,,0.25,0,0\n-3,shoes,4,1e3,1,0\n")
    out, report = _convert(tmp_path, source, "--group_key=user_id")
    assert report["rows_read"] == 3 and report["rows_written"] == 3 and report["dropped_by_reason"] == {}
    schema, records = read_records(out)
    assert schema.labels == {"click": "click", "conversion": "conversion"} and schema.group_key == "user_id"
    assert [(f.name, f.type, f.dtype) for f in schema.features] == [
        ("user_id", "categorical", "int64"),
        ("category", "categorical", "string"),
        ("history", "categorical_list", "int64"),
        ("price", "numeric", "float32"),
    ]
    assert {f.name: f.num_buckets for f in schema.categorical} == {"user_id": 6, "category": 4, "history": 8}
    assert schema.lists[0].max_length == 3
    assert records == [
        {"user_id": 7, "category": "shoes", "history": [1, 2, 3], "price": 9.5, "click": 1, "conversion": 1},
        {"user_id": 8, "category": "hats", "history": [], "price": 0.25, "click": 0, "conversion": 0},
        {"user_id": -3, "category": "shoes", "history": [4], "price": 1000.0, "click": 1, "conversion": 0},
    ]


def test_parquet_log_round_trips(tmp_path):
    table = pa.table(
        {
            "user_id": [7, 8],
            "category": ["shoes", "hats"],
            "history": [[1, 2], []],
            "price": [9.5, 0.25],
            "clicked": [1, 0],
            "bought": [0, 0],
            "unused": ["a", "b"],
        }
    )
    source = tmp_path / "log.parquet"
    pq.write_table(table, source)
    out, report = _convert(tmp_path, source, "--num_buckets=user_id=100")
    assert report["rows_written"] == 2
    schema, records = read_records(out)
    assert {f.name: f.num_buckets for f in schema.categorical}["user_id"] == 100
    assert [r["history"] for r in records] == [[1, 2], []] and [r["category"] for r in records] == ["shoes", "hats"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("x,shoes,1,9.5,1,0", "column 'user_id' must hold an integer id. Received: 'x'"),
        ("7,shoes,1,nan,1,0", "column 'price' must hold a finite number"),
        ("7,shoes,1,9.5,yes,0", "label column 'clicked' must be 0 or 1"),
        ("7,shoes,1,9.5,1", "expected 6 comma-separated fields, found 5"),
        ("7,shoes,1|a,9.5,1,0", "column 'history' must hold an integer id"),
    ],
)
def test_malformed_lines_stop_or_are_skipped_and_counted(tmp_path, line, message):
    source = tmp_path / "bad.csv"
    source.write_text(HEADER + "7,shoes,1,9.5,1,0\n" + line + "\n8,hats,2,1.0,0,0\n")
    with pytest.raises(SystemExit, match=rf"bad.csv:3: {message}"):
        _convert(tmp_path, source)
    _, report = _convert(tmp_path / "skip", source, "--max_errors=-1")
    assert report["rows_read"] == 3 and report["rows_written"] == 2
    assert report["dropped_by_reason"] == {"malformed": 1}
    assert report["malformed_examples"] == [f"{source}:3: " + report["malformed_examples"][0].split(":3: ")[1]]


def test_layout_errors_name_what_is_missing(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text("user_id,clicked,bought\n1,0,0\n")
    with pytest.raises(SystemExit, match=r"log.csv: missing column\(s\) \['category', 'history', 'price'\]"):
        _convert(tmp_path, source)
    with pytest.raises(SystemExit, match="either both label columns"):
        cli.main(
            [
                "csv",
                "--input",
                str(source),
                "--out",
                str(tmp_path / "o"),
                "--label_click=clicked",
                "--categorical=user_id",
            ]
        )
    with pytest.raises(
        SystemExit, match=r"--preset=paddlerec-aitm sets the columns; do not also give \['categorical'\]"
    ):
        cli.main(
            [
                "csv",
                "--input",
                str(source),
                "--out",
                str(tmp_path / "o"),
                "--preset=paddlerec-aitm",
                "--categorical=user_id",
            ]
        )
    # A usage error (one line, exit status 2), raised before any output is written.
    with pytest.raises(SystemExit, match=r"--input=.*none\*\.csv: No file matches the input pattern") as exit_info:
        cli.main(["csv", "--input", str(tmp_path / "none*.csv"), "--out", str(tmp_path / "o"), *LOG_FLAGS])
    assert exit_info.value.code == 2 and not (tmp_path / "o").exists()


def _csv_labels(path, has_header=True):
    with open(path) as f:
        rows = list(csv.reader(f))
    rows = rows[1:] if has_header else rows
    return [(int(r[0]), int(r[1])) for r in rows]


def test_torch_rechub_preset_on_the_real_sample(tmp_path, shared_data):
    folder = shared_data / "ali-ccp" / "torch-rechub"
    out = tmp_path / "rechub"
    report = cli.main(
        [
            "csv",
            "--preset=torch-rechub-aliccp",
            "--input",
            str(folder / "ali_ccp_train_sample.csv"),
            "--out",
            str(out),
            "--valid_fraction=0.2",
            "--quiet",
            "--runner=InProcess",
        ]
    )
    assert report["rows_read"] == 100 and report["rows_written"] == 100
    assert report["written_by_split"]["train"] + report["written_by_split"]["valid"] == 100
    assert 5 <= report["written_by_split"]["valid"] <= 40
    schema, train = read_records(out)
    _, valid = read_records(out, split="valid")
    records = train + valid
    assert len(schema.categorical) == 23 and len(schema.numeric) == 8
    assert sum(r["click"] for r in records) == 7 and sum(r["conversion"] for r in records) == 1
    with open(folder / "ali_ccp_train_sample.csv") as f:
        rows = list(csv.DictReader(f))
    expected = sorted((int(r["205"]), float(r["D508"])) for r in rows)
    actual = sorted((r["205"], r["D508"]) for r in records)
    assert [item for item, _ in actual] == [item for item, _ in expected]
    assert [value for _, value in actual] == pytest.approx([value for _, value in expected])


def test_paddlerec_aitm_preset_drops_and_counts_conversions_without_click(tmp_path, shared_data):
    folder = shared_data / "ali-ccp" / "paddlerec-aitm"
    out = tmp_path / "aitm"
    train_labels = _csv_labels(folder / "train" / "train.csv")
    invalid = sum(1 for click, conversion in train_labels if click == 0 and conversion == 1)
    assert invalid == 2  # the sample's hand-edited rows (shared/data/README.md §3)
    report = cli.main(
        [
            "csv",
            "--preset=paddlerec-aitm",
            "--input",
            str(folder / "train" / "train.csv"),
            "--out",
            str(out),
            "--quiet",
            "--runner=InProcess",
        ]
    )
    assert report["rows_read"] == 48 and report["rows_written"] == 46
    assert report["dropped_by_reason"] == {"conversion_without_click": 2}
    _, records = read_records(out)
    assert sorted((r["click"], r["conversion"]) for r in records) == sorted(
        (c, v) for c, v in train_labels if not (c == 0 and v == 1)
    )
    # test.csv has no header line: all 50 lines are data (PaddleRec's reader loses the first).
    test_labels = _csv_labels(folder / "test" / "test.csv", has_header=False)
    report = cli.main(
        [
            "csv",
            "--preset=paddlerec-aitm",
            "--input",
            str(folder / "test" / "test.csv"),
            "--out",
            str(out),
            "--split=test",
            f"--schema={out / 'schema.json'}",
            "--invalid_conversion=keep",
            "--quiet",
            "--runner=InProcess",
        ]
    )
    assert len(test_labels) == report["rows_read"] == report["rows_written"] == 50
    assert report["counts"]["kept_conversion_without_click"] == 3
    _, test_records = read_records(out, split="test")
    assert sum(r["conversion"] for r in test_records) == sum(v for _, v in test_labels)


def test_converted_shards_feed_the_pipeline(tmp_path, shared_data):
    from tfcvr.data import TFRecordPipeline
    from tfcvr.data import schema as schema_lib

    out = tmp_path / "rechub"
    cli.main(
        [
            "csv",
            "--preset=torch-rechub-aliccp",
            "--input",
            str(shared_data / "ali-ccp" / "torch-rechub" / "ali_ccp_test_sample.csv"),
            "--out",
            str(out),
            "--quiet",
            "--runner=InProcess",
        ]
    )
    schema = schema_lib.load_schema(str(out / "schema.json"))
    pipeline = TFRecordPipeline(str(out / "train-*"), schema, batch_size=64)
    with pipeline.named_errors():
        batches = list(pipeline.dataset())
    assert sum(int(tf.shape(labels["click"])[0]) for _, labels in batches) == 50
