"""Whether TFRecord files read whole, and what a damaged one loses.

A TFRecord file is a run of framed records: the data's length (8 bytes,
little-endian), a masked CRC-32C of those 8 bytes, the data, a masked CRC-32C
of the data. TensorFlow's reader stops at the first record whose frame or
checksum is bad with a DataLossError, and silently at a file that ends inside
a record's 12-byte header. It cannot resume after a bad record (the format has
no sync marker), so a file is readable up to its first bad record and not
beyond: `scan` finds that point for every file in one read pass, and
`Damage` says what lies beyond it (counted by walking the length headers,
each checked against its CRC).
"""

import dataclasses
import functools
import os
import struct
from collections.abc import Sequence

import google_crc32c
import tensorflow as tf
from absl import logging

from tfcvr.data import errors

# Bytes a TFRecord file spends on each record beside its data: the length (8), its CRC (4) and the data's CRC (4).
RECORD_FRAMING_BYTES = 16
_HEADER_BYTES = 12
_CRC_MASK_DELTA = 0xA282EAD8  # TFRecord's masked CRC: rotate right by 15 bits, add this (mod 2^32)


@dataclasses.dataclass(frozen=True)
class FileScan:
    """One file read as far as TensorFlow's reader goes.

    Attributes:
      path: the file.
      records: whole records before the first unreadable byte (all of them when the file is whole).
      readable_bytes: where those records end.
      size: the file's size in bytes when it was read.
      error: TensorFlow's message for the first unreadable record; None when
        the file is whole or ends inside a record's header (the reader then
        stops without one).
    """

    path: str
    records: int
    readable_bytes: int
    size: int
    error: str | None = None

    @property
    def whole(self) -> bool:
        return self.readable_bytes == self.size

    @functools.cached_property
    def damage(self) -> "Damage":
        """What the file holds past its readable records (counted once, by walking the length headers)."""
        if self.whole:
            raise ValueError(f"{self.path} reads whole: no damage to describe.")
        return Damage(self, self.error, _records_past(self.path, self.readable_bytes, self.size))


@dataclasses.dataclass(frozen=True)
class Damage:
    """A file that does not read whole: where it breaks, and what is out of the reader's reach past that point.

    Attributes:
      scan: the file's `FileScan`.
      error: TensorFlow's message for the first unreadable record; None when
        the file ends inside a record's header (the reader stops without one).
      records_lost: records framed past the readable ones, the broken one
        included (a record cut off by the end of the file counts as one); None
        when a length header there fails its CRC, so records cannot be told apart.
    """

    scan: FileScan
    error: str | None
    records_lost: int | None

    @property
    def bytes_lost(self) -> int:
        return self.scan.size - self.scan.readable_bytes

    def describe(self) -> str:
        """One line naming the file and the index of its first unreadable record."""
        scan = self.scan
        if self.error is None:
            return (
                f"TFRecord file {scan.path} is cut short: its {scan.records} whole records end at byte "
                f"{scan.readable_bytes} of {scan.size}."
            )
        return (
            f"TFRecord file {scan.path} is corrupt or truncated at record {scan.records} (the records before it read "
            f"whole): {self.error}"
        )

    def as_dict(self) -> dict:
        """The damage as a report entry (run reports' `skipped_corrupt_records`)."""
        return {
            "file": self.scan.path,
            "records_read": self.scan.records,
            "first_unreadable_record": self.scan.records,
            "bytes_lost": self.bytes_lost,
            "records_lost": self.records_lost,
            "error": self.error or "the file ends inside a record's header",
        }


# Scans already made in this process, by (path, size, modification time): a run's pipelines over the same
# files (its statistics pass and its training input) read them once between them.
_SCANNED: dict[tuple, FileScan] = {}
_REPORTED: set[tuple] = set()


def scan(files: Sequence[str]) -> list[FileScan]:
    """Each file read once as far as it goes (one tf.data pass over the files not scanned before).

    A file the fast pass reads short is read again strictly: an error other
    than corrupt data (a failing store, a permission) is raised, not taken for
    damage, and the damaged file's first unreadable record gets TensorFlow's message.
    """
    versions = [_version(path) for path in files]  # before reading: a file changed meanwhile is another version
    fresh = [version for version in dict.fromkeys(versions) if version not in _SCANNED]
    for version, found in zip(fresh, _read_through(fresh)):
        _SCANNED[version] = found if found.whole else _read_strictly(found)
    return [_SCANNED[version] for version in versions]


def report_skipped(scans: Sequence[FileScan]) -> None:
    """Logs each damaged file of `scans` as skipped past its readable records, once per process."""
    for found in scans:
        version = _version(found.path)
        if found.whole or version in _REPORTED:
            continue
        _REPORTED.add(version)
        damage = found.damage
        lost = "an unknown number of records" if damage.records_lost is None else f"{damage.records_lost} records"
        logging.warning(
            "Skipping the unreadable rest of %s from record %d on (%s): %s, %d bytes, lost.",
            found.path,
            found.records,
            damage.as_dict()["error"],
            lost,
            damage.bytes_lost,
        )


def check_whole(files: Sequence[str]) -> int:
    """Records in `files`; a `DataError` naming the first file that does not read whole and its record index."""
    total = 0
    for found in scan(files):
        if not found.whole:
            raise errors.DataError(found.damage.describe())
        total += found.records
    return total


def _version(path: str) -> tuple:
    """(path, size, a change stamp): TensorFlow's stat has whole seconds, so a local file adds its inode and ns time."""
    stat = tf.io.gfile.stat(path)
    if "://" in path:
        return path, stat.length, stat.mtime_nsec
    local = os.stat(path)
    return path, stat.length, (local.st_mtime_ns, local.st_ino)


def _read_through(versions: Sequence[tuple]) -> list[FileScan]:
    """(records, framed bytes) each file's reader yields before it stops, tallied in one pass."""
    if not versions:
        return []
    files = [path for path, _, _ in versions]
    # ignore_errors ends a file's records at its first unreadable one (the reader cannot go past it).
    indexed = tf.data.Dataset.from_tensor_slices((list(files), tf.range(len(files), dtype=tf.int64))).flat_map(
        lambda path, index: (
            tf.data.TFRecordDataset(path).ignore_errors().map(lambda record: (index, _framed_length(record)))
        )
    )
    tallies = indexed.reduce(
        tf.zeros([len(files), 2], tf.int64),
        lambda tally, entry: tf.tensor_scatter_nd_add(
            tally, [[entry[0], 0], [entry[0], 1]], tf.stack([tf.constant(1, tf.int64), entry[1]])
        ),
    ).numpy()
    return [
        FileScan(path, int(records), int(framed), size) for (path, size, _), (records, framed) in zip(versions, tallies)
    ]


def _framed_length(record: tf.Tensor) -> tf.Tensor:
    """The bytes a record takes in its file: its data and its framing (int64)."""
    return tf.cast(tf.strings.length(record), tf.int64) + RECORD_FRAMING_BYTES


def _read_strictly(found: FileScan) -> FileScan:
    """`found`'s file read again without ignoring errors: a DataLossError marks the damage, any other is raised."""
    records = framed = 0
    try:
        try:
            for lengths in tf.data.TFRecordDataset(found.path).map(_framed_length).batch(4096):
                records, framed = records + len(lengths), framed + int(tf.reduce_sum(lengths))
        except tf.errors.DataLossError:  # in the next batch: one record at a time from its start
            for length in tf.data.TFRecordDataset(found.path).skip(records).map(_framed_length):
                records, framed = records + 1, framed + int(length)
    except tf.errors.DataLossError as e:
        return FileScan(found.path, records, framed, found.size, errors.clean_op_message(e))
    if found.size - framed >= _HEADER_BYTES:  # the reader stops silently only inside a header
        raise errors.DataError(
            f"TFRecord file {found.path} read {records} records ({framed} of {found.size} bytes) and stopped without "
            "an error; it may be changing while it is read."
        )
    return FileScan(found.path, records, framed, found.size)


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def _records_past(path: str, offset: int, size: int) -> int | None:
    """Records framed from byte `offset` to byte `size` of `path` (a cut-off last one counts); None: a bad header."""
    count = 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while offset < size:
            count += 1
            f.seek(offset)
            header = f.read(_HEADER_BYTES)
            if len(header) < _HEADER_BYTES:
                return count  # the file ends inside this header
            (length,) = struct.unpack("<Q", header[:8])
            (length_crc,) = struct.unpack("<I", header[8:])
            if _masked_crc(header[:8]) != length_crc:
                return None  # a damaged length: where the next record starts is unknown
            offset += length + RECORD_FRAMING_BYTES
    return count
