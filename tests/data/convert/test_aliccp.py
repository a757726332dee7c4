"""Ali-CCP converters: raw Tianchi lines written by hand from FORMATS.md §1.3-1.5, and PaddleRec's text sample."""

import json

import pytest
import tensorflow as tf

from tests.data.convert.conftest import read_records
from tfcvr.data.convert import cli

F, V, E = "\x01", "\x02", "\x03"  # between features, field|id, id|value


def _features(*entries):
    return F.join(f"{field}{V}{feature_id}{E}{value}" for field, feature_id, value in entries)


def _write_raw(tmp_path, skeleton_lines, common_lines):
    tmp_path.mkdir(parents=True, exist_ok=True)
    skeleton = tmp_path / "sample_skeleton_train.csv"
    common = tmp_path / "common_features_train.csv"
    skeleton.write_text("".join(line + "\n" for line in skeleton_lines))
    common.write_text("".join(line + "\n" for line in common_lines))
    return str(skeleton), str(common)


COMMON = [
    "u1,4," + _features(("101", 1001, 1.0), ("109_14", 501, 2.0), ("109_14", 502, 4.0), ("124", 2, 1.0)),
    "u2,1," + _features(("101", 1002, 1.0)),
]
SKELETON = [
    "1,0,0,u1,4," + _features(("205", 9001, 1.0), ("210", 801, 1.0), ("210", 802, 1.0), ("508", 70, 0.5)),
    "2,1,1,u1,1," + _features(("205", 9002, 1.0)),
    "3,0,1,u2,1," + _features(("205", 9003, 1.0)),  # conversion without click
    "4,1,0,u9,1," + _features(("205", 9004, 1.0)),  # no common features for u9
    "5,1,0,u2,0,",  # no impression features at all
]


def _convert(tmp_path, *flags, skeleton=SKELETON, common=COMMON):
    paths = _write_raw(tmp_path, skeleton, common)
    out = tmp_path / "out"
    report = cli.main(
        [
            "aliccp",
            "--skeleton",
            paths[0],
            "--common",
            paths[1],
            "--out",
            str(out),
            "--num_shards",
            "1",
            "--quiet",
            "--runner=InProcess",
            *flags,
        ]
    )
    return out, report


def test_raw_join_lists_dense_values_and_counts(tmp_path):
    out, report = _convert(tmp_path)
    assert report["rows_read"] == 5 and report["rows_written"] == 3
    assert report["dropped_by_reason"] == {"conversion_without_click": 1, "missing_common_features": 1}
    assert report["counts"]["common_feature_rows"] == 2
    schema, records = read_records(out, extra={"sample_id": tf.io.FixedLenFeature([], tf.int64)})
    by_id = {r["sample_id"]: r for r in records}
    assert sorted(by_id) == [1, 2, 5]
    first = by_id[1]
    assert first["101"] == 1001 and first["124"] == 2 and first["126"] == -1  # absent single field: -1
    assert first["109_14"] == [501, 502] and first["D109_14"] == pytest.approx(3.0)  # mean of 2 and 4
    assert first["205"] == 9001 and first["210"] == [801, 802] and first["216"] == -1
    assert first["508"] == [70] and first["D508"] == pytest.approx(0.5) and first["D853"] == 0.0
    assert (first["click"], first["conversion"]) == (0, 0)
    assert (by_id[2]["click"], by_id[2]["conversion"], by_id[2]["210"]) == (1, 1, [])
    assert by_id[5]["101"] == 1002 and by_id[5]["205"] == -1 and by_id[5]["109_14"] == []
    types = {f.name: f.type for f in schema.features}
    assert types["109_14"] == "categorical_list" and types["101"] == "categorical" and types["D509"] == "numeric"
    lists = {f.name: f.max_length for f in schema.lists}
    assert lists["109_14"] == 2 and lists["210"] == 2 and lists["853"] == 1
    buckets = {f.name: f.num_buckets for f in schema.features if f.is_categorical}
    assert buckets["101"] == 2 * 2 and buckets["205"] == 2 * 3  # distinct written values x bucket_factor 2
    assert schema.group_key == "101"
    assert json.loads((out / "train_report.json").read_text())["rows_written"] == 3


@pytest.mark.parametrize("policy, expected_id, expected_value", [("last", 502, 4.0), ("first", 501, 2.0)])
def test_single_value_policies(tmp_path, policy, expected_id, expected_value):
    out, _ = _convert(tmp_path, f"--single_value={policy}")
    schema, records = read_records(out)
    assert not schema.lists
    first = [r for r in records if r["205"] == 9001][0]
    assert first["109_14"] == expected_id and first["D109_14"] == pytest.approx(expected_value)
    assert first["210"] == (802 if policy == "last" else 801)


def test_keep_invalid_conversions_and_truncate_lists(tmp_path):
    out, report = _convert(tmp_path, "--invalid_conversion=keep", "--max_list_length=1")
    assert report["rows_written"] == 4
    assert report["counts"]["kept_conversion_without_click"] == 1
    assert report["counts"]["list_values_truncated/109_14"] == 1
    assert report["counts"]["list_values_truncated/210"] == 1
    _, records = read_records(out)
    assert [r["109_14"] for r in records if r["205"] == 9001] == [[501]]


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("6,1,0,u1,2," + _features(("205", 1, 1.0)), "feature_num is 2 but the feature_list has 1 features"),
        ("6,1,0,u1", "expected 6 comma-separated fields, found 4"),
        ("6,2,0,u1,1," + _features(("205", 1, 1.0)), "label column 'click' must be 0 or 1"),
        ("6,1,0,u1,1,205" + V + "x" + E + "1.0", "field 205 id"),
        ("6,1,0,u1,1,205" + V + "7", "is not field\\\\x02id\\\\x03value"),
        ("6,1,0,u1,1,205" + E + "7" + V + "1.0", "is not field\\\\x02id\\\\x03value"),  # separators swapped
        ("6,1,0,u1,1,205" + V + "+7" + E + "1.0", r"field 205 id' must hold an integer id. Received: '\+7'"),
        # A malformed row is malformed whether or not its common row exists (u9 has none).
        ("6,1,0,u9,1," + _features(("508", 1, "x")), "field 508 value.*Received: 'x'"),
        ("6,1,0,u1,1," + _features(("101", 5, 1.0)), r"field\(s\) \['101'\] in the sample skeleton"),
        # A list field's values are summed for their mean: a non-number among them is still named.
        ("6,1,0,u1,2," + _features(("508", 1, 0.5), ("508", 2, "nan")), "field 508 value.*Received: 'nan'"),
        ("6,1,0,u1,2," + _features(("853", 1, "x"), ("853", 2, 0.5)), "field 853 value.*Received: 'x'"),
    ],
)
def test_malformed_skeleton_line_names_file_and_line(tmp_path, bad_line, message):
    with pytest.raises(SystemExit, match=rf"sample_skeleton_train.csv:6: .*{message}"):
        _convert(tmp_path, skeleton=SKELETON + [bad_line])
    out, report = _convert(tmp_path / "skip", "--max_errors=1", skeleton=SKELETON + [bad_line])
    assert report["dropped_by_reason"]["malformed"] == 1 and report["rows_written"] == 3
    assert "sample_skeleton_train.csv:6" in report["malformed_examples"][0]


def test_malformed_common_line_is_named_and_unknown_fields_counted(tmp_path):
    common = COMMON[:1] + ["u2,2," + _features(("101", 1002, 1.0))]
    with pytest.raises(
        SystemExit,
        match=r"sample_skeleton_train.csv:3: its common features "
        r"\(.*common_features_train.csv:2\) are malformed: feature_num is 2",
    ):
        _convert(tmp_path, common=common)
    skeleton = SKELETON[:1] + [
        "7,0,0,u1,4," + _features(("999", 4, 1.0), ("205", 1, 1.0), ("999", 5, 1.0), ("8", 1, 1))
    ]
    _, report = _convert(tmp_path / "unknown", skeleton=skeleton)
    assert report["counts"]["unknown_field_values/999"] == 2 and report["counts"]["unknown_field_values/8"] == 1
    assert report["rows_written"] == 2


def test_duplicate_common_key_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match=r"common_features_train.csv:3: key 'u1' already appeared on line 1"):
        _convert(tmp_path, common=COMMON + [COMMON[0]])


def test_test_split_uses_the_training_schema_and_validation_split(tmp_path):
    out, report = _convert(tmp_path, "--valid_fraction=0.5", "--split_seed=3")
    assert sum(report["written_by_split"].values()) == 3 and set(report["written_by_split"]) <= {"train", "valid"}
    schema_path = str(out / "schema.json")
    before = (out / "schema.json").read_text()
    paths = _write_raw(tmp_path / "test", SKELETON[:2], COMMON)
    test_report = cli.main(
        [
            "aliccp",
            "--skeleton",
            paths[0],
            "--common",
            paths[1],
            "--out",
            str(out),
            "--split=test",
            f"--schema={schema_path}",
            "--num_shards=1",
            "--quiet",
            "--runner=InProcess",
        ]
    )
    assert test_report["written_by_split"] == {"test": 2}
    assert (out / "schema.json").read_text() == before
    # A usage error now: one line naming --schema, exit status 2 (UserExit is a SystemExit whose str is the line).
    with pytest.raises(SystemExit, match=r"--schema=.*does not describe the features this conversion writes"):
        cli.main(
            [
                "aliccp",
                "--skeleton",
                paths[0],
                "--common",
                paths[1],
                "--out",
                str(tmp_path / "x"),
                "--single_value=last",
                f"--schema={schema_path}",
                "--quiet",
                "--runner=InProcess",
            ]
        )
    with pytest.raises(ValueError, match="already exists; convert into an empty folder"):
        cli.main(
            [
                "aliccp",
                "--skeleton",
                paths[0],
                "--common",
                paths[1],
                "--out",
                str(out),
                "--split=test",
                "--num_shards=1",
                "--quiet",
                "--runner=InProcess",
            ]
        )


def test_paddlerec_text_keeps_multi_valued_fields(tmp_path, shared_data):
    path = shared_data / "ali-ccp" / "paddlerec-esmm" / "train" / "small.txt"
    out = tmp_path / "esmm"
    report = cli.main(
        [
            "aliccp",
            "--paddlerec_text",
            str(path),
            "--out",
            str(out),
            "--num_shards=1",
            "--max_list_length=400",
            "--quiet",
            "--runner=InProcess",
        ]
    )
    assert report["rows_read"] == 10 and report["rows_written"] == 10
    lines = path.read_text().splitlines()
    schema, records = read_records(out, extra={"sample_id": tf.io.FixedLenFeature([], tf.int64)})
    assert not any(f.name.startswith("D") for f in schema.features)  # the layout keeps no values
    by_id = {r["sample_id"]: r for r in records}
    for line in lines:
        columns = line.split(",")
        record = by_id[int(columns[0])]
        assert (record["click"], record["conversion"]) == (int(columns[1]), int(columns[2]))
        for field in ("210", "110_14", "853"):
            expected = [int(c.split(":")[1]) for c in columns[3:] if c.split(":")[0] == field]
            assert record[field] == expected
        assert record["126"] == -1  # absent in every row of the sample
    assert sum(r["click"] for r in records) == 2 and sum(r["conversion"] for r in records) == 1
    assert {f.name: f.max_length for f in schema.lists}["110_14"] == 342
