"""The data checks made before any work: one record per file, skipping damaged files only when asked."""

import pytest

from tests.conftest import tiny_row, write_rows
from tfcvr.data import DataError
from trainer import config as config_lib
from trainer import preflight


def _files(tmp_path):
    good = write_rows(tmp_path / "a-good.tfrecord", [tiny_row()] * 3)
    garbage = tmp_path / "b-garbage.tfrecord"
    garbage.write_bytes(b"not a TFRecord file " * 20)
    stub = tmp_path / "c-stub.tfrecord"
    stub.write_bytes(open(good, "rb").read()[:7])  # bytes, but not one whole record
    return good, str(garbage), str(stub)


def test_a_file_unreadable_from_its_first_record_is_refused_unless_skipping(tmp_path, tiny_schema):
    good, garbage, stub = _files(tmp_path)
    strict = config_lib.DataConfig()
    with pytest.raises(DataError, match=f"--train_files: {garbage} is not a readable TFRecord file"):
        preflight.check_files("--train_files", f"{tmp_path}/*.tfrecord", tiny_schema, strict)
    with pytest.raises(DataError, match=f"--train_files: {stub} holds 7 bytes but no whole record"):
        preflight.check_files("--train_files", f"{good},{stub}", tiny_schema, strict)
    skipping = config_lib.DataConfig(skip_corrupt_records=True)
    assert preflight.check_files("--train_files", f"{tmp_path}/*.tfrecord", tiny_schema, skipping) == [
        good,
        garbage,
        stub,
    ]


def test_no_readable_record_at_all_is_an_error_even_when_skipping(tmp_path, tiny_schema):
    _, garbage, stub = _files(tmp_path)
    (tmp_path / "d-empty.tfrecord").write_bytes(b"")
    skipping = config_lib.DataConfig(skip_corrupt_records=True)
    with pytest.raises(DataError, match=r"no matched file holds a readable record \(1 of 3 empty, 2 unreadable"):
        preflight.check_files("--eval_files", f"{garbage},{stub},{tmp_path}/d-empty.tfrecord", tiny_schema, skipping)
