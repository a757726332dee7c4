"""Scanning TFRecord files: where a damaged file breaks and what it loses past that point."""

import os
import struct

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_row, write_rows
from tfcvr.data import DataError, TFRecordPipeline, integrity

RECORDS = 40


def _records(tmp_path, name="whole.tfrecord", count=RECORDS):
    """A file of `count` equal records (prices differ by digits of equal width): (path, bytes per framed record)."""
    path = write_rows(tmp_path / name, [tiny_row(price=float(10 + i)) for i in range(count)])
    size = os.path.getsize(path)
    assert size % count == 0
    return path, size // count


def _damaged(tmp_path, how, at):
    """A copy of a 40-record file damaged at record `at`: (path, bytes per record)."""
    path, width = _records(tmp_path)
    data = bytearray(open(path, "rb").read())
    start = at * width
    if how == "data":
        data[start + 12 + 3] ^= 0xFF  # the record's data: its data CRC fails
    elif how == "length":
        data[start + 2] ^= 0xFF  # the record's length: its length CRC fails
    elif how == "cut_data":
        del data[start + 12 + 5 :]  # the file ends inside the record's data
    elif how == "cut_header":
        del data[start + 5 :]  # the file ends inside the record's 12-byte header
    damaged = str(tmp_path / f"{how}.tfrecord")
    open(damaged, "wb").write(bytes(data))
    return damaged, width


def test_a_whole_file_reads_whole(tmp_path):
    path, width = _records(tmp_path)
    (found,) = integrity.scan([path])
    assert (found.records, found.readable_bytes, found.size, found.whole) == (
        RECORDS,
        RECORDS * width,
        RECORDS * width,
        True,
    )
    assert integrity.check_whole([path, path]) == 2 * RECORDS
    with pytest.raises(ValueError, match="reads whole"):
        found.damage  # noqa: B018 (the property raises)


@pytest.mark.parametrize(
    "how, lost, error",
    [
        ("data", RECORDS - 25, "corrupted record at"),  # later records are framed whole: counted by their headers
        ("length", None, "corrupted record at"),  # a bad length: where the next record starts is unknown
        ("cut_data", 1, "truncated record at"),
        ("cut_header", 1, None),  # TensorFlow's reader stops here without an error
    ],
)
def test_damage_is_located_and_what_lies_past_it_counted(tmp_path, how, lost, error):
    path, width = _damaged(tmp_path, how, at=25)
    (found,) = integrity.scan([path])
    assert (found.records, found.readable_bytes, found.whole) == (25, 25 * width, False)
    damage = found.damage
    assert damage.records_lost == lost
    assert damage.bytes_lost == os.path.getsize(path) - 25 * width
    if error is None:
        assert damage.error is None
        assert damage.describe() == (
            f"TFRecord file {path} is cut short: its 25 whole records end at byte {25 * width} of "
            f"{os.path.getsize(path)}."
        )
    else:
        assert damage.error.startswith(error)
        assert damage.describe().startswith(
            f"TFRecord file {path} is corrupt or truncated at record 25 (the records before it read whole): {error}"
        )
    assert damage.as_dict() == {
        "file": path,
        "records_read": 25,
        "first_unreadable_record": 25,
        "bytes_lost": damage.bytes_lost,
        "records_lost": lost,
        "error": damage.error or "the file ends inside a record's header",
    }
    with pytest.raises(DataError, match=f"{path} is (cut short|corrupt or truncated at record 25)"):
        integrity.check_whole([_records(tmp_path, "first.tfrecord")[0], path])


def test_the_length_checksum_is_tensorflows(tmp_path):
    # The masked CRC-32C written by TensorFlow's writer for every record's length, recomputed here.
    path, width = _records(tmp_path, count=3)
    data = open(path, "rb").read()
    for record in range(3):
        header = data[record * width : record * width + 12]
        assert integrity._masked_crc(header[:8]) == struct.unpack("<I", header[8:])[0]


def test_a_rewritten_file_is_scanned_again(tmp_path):
    path, _ = _records(tmp_path, count=5)
    assert integrity.scan([path])[0].records == 5
    write_rows(path, [tiny_row()] * 7)
    os.utime(path, ns=(1, 2))  # a new modification time even within the clock's resolution
    assert integrity.scan([path])[0].records == 7
    # The same size, another modification time: read again (here its damage is found).
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    os.utime(path, ns=(3, 4))
    assert not integrity.scan([path])[0].whole


def test_a_short_read_that_does_not_repeat_is_not_taken_for_damage(tmp_path):
    # The fast pass ignores errors; a file it read short (e.g. a store's transient failure) is read again strictly.
    path, width = _records(tmp_path, count=6)
    short = integrity.FileScan(path, 2, 2 * width, 6 * width)
    assert integrity._read_strictly(short) == integrity.FileScan(path, 6, 6 * width, 6 * width)


def _prices(pipeline, **kwargs):
    with pipeline.named_errors():
        return sorted(float(p) for features, _ in pipeline.dataset(**kwargs) for p in features["price"].numpy())


@pytest.mark.parametrize("cache", [False, True])
def test_skip_corrupt_records_reads_up_to_the_damage_and_reports_it(tmp_path, tiny_schema, cache, caplog):
    other = write_rows(tmp_path / "other.tfrecord", [tiny_row(price=1.0)] * 5)
    damaged, _ = _damaged(tmp_path, "data", at=25)
    with pytest.raises(DataError, match=f"{damaged} is corrupt or truncated at record 25"):
        _prices(TFRecordPipeline([other, damaged], tiny_schema, batch_size=8, cache=cache))
    skipping = TFRecordPipeline([other, damaged], tiny_schema, batch_size=8, cache=cache, skip_corrupt_records=True)
    assert skipping.record_count() == 30
    assert _prices(skipping) == [1.0] * 5 + [float(10 + i) for i in range(25)]
    (skipped,) = skipping.corrupt_records_skipped
    assert (skipped["file"], skipped["records_read"], skipped["records_lost"]) == (damaged, 25, RECORDS - 25)
    assert TFRecordPipeline([other], tiny_schema, 8, skip_corrupt_records=True).corrupt_records_skipped == []
    assert TFRecordPipeline([other, damaged], tiny_schema, 8).corrupt_records_skipped == []  # not skipping
    skipped_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Skipping the unreadable")]
    assert len(skipped_lines) <= 1  # logged once per process (an earlier test may have logged this file version)


def test_skipping_applies_to_every_reader(tmp_path, tiny_schema):
    damaged, _ = _damaged(tmp_path, "cut_data", at=25)
    pipeline = TFRecordPipeline(damaged, tiny_schema, batch_size=8, skip_corrupt_records=True)
    # Two readers splitting the file by record (one file, two shards) read the 25 records between them.
    shards = [_prices(pipeline, num_shards=2, shard_index=i) for i in range(2)]
    assert (len(shards[0]), len(shards[1])) == (13, 12)
    assert sorted(shards[0] + shards[1]) == [float(10 + i) for i in range(25)]
    # The unparsed records scored through an export's signature.
    serialized = [batch for batch, _ in pipeline.serialized_dataset()]
    assert sum(int(b.shape[0]) for b in serialized) == 25


def test_a_bad_record_after_a_skipped_damage_is_still_named(tmp_path, tiny_schema):
    damaged, _ = _damaged(tmp_path, "data", at=25)
    bad = write_rows(tmp_path / "z-bad.tfrecord", [tiny_row()] * 3 + [tiny_row(click=2)])
    pipeline = TFRecordPipeline([damaged, bad], tiny_schema, batch_size=8, skip_corrupt_records=True)
    with pytest.raises(DataError, match=rf"Label 'click' \(click\) must be 0 or 1[\s\S]*{bad}:3"):
        _prices(pipeline)


def test_skipped_records_are_logged_once(tmp_path, tiny_schema, caplog):
    damaged, _ = _damaged(tmp_path, "length", at=10)
    for _ in range(2):  # e.g. a run's statistics pass and its training input over the same file
        TFRecordPipeline(damaged, tiny_schema, 8, skip_corrupt_records=True).record_count()
    messages = [r.getMessage() for r in caplog.records if "Skipping the unreadable rest" in r.getMessage()]
    assert messages == [
        f"Skipping the unreadable rest of {damaged} from record 10 on ("
        + integrity.scan([damaged])[0].damage.error
        + f"): an unknown number of records, {os.path.getsize(damaged) - 10 * (os.path.getsize(damaged) // RECORDS)}"
        " bytes, lost."
    ]


def test_scan_reads_many_files_in_one_pass(tmp_path):
    paths = [write_rows(tmp_path / f"f{k}.tfrecord", [tiny_row()] * k) for k in range(1, 6)]
    np.testing.assert_array_equal([found.records for found in integrity.scan(paths)], [1, 2, 3, 4, 5])
    assert all(found.size == tf.io.gfile.stat(found.path).length for found in integrity.scan(paths))
