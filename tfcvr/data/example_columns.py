"""Serialized tf.train.Examples of a whole batch of rows at once, from columns of values (numpy, no per-row calls).

A converter writes millions of rows. Building each `tf.train.Example`
through protobuf's Python API costs C calls per feature, per list and per
nested message, and was the largest share of a raw Ali-CCP row's cost; a
hand-written per-row encoder in Python costs about as much. `encode` computes
the bytes of every row of a batch with array operations: the bytes that
`example_writer.to_example(row).SerializeToString(deterministic=True)` gives
for each row (tests/data/test_example_columns.py compares them byte for byte).

The messages (tensorflow/core/example/example.proto and feature.proto) and
their encoding (https://protobuf.dev/programming-guides/encoding/):

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }  # entries {string key = 1; Feature value = 2;}
    Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    FloatList { repeated float value = 1 [packed = true]; }
    Int64List { repeated int64 value = 1 [packed = true]; }

Each level is a one-byte tag (field number << 3 | 2, length delimited), the
varint length of its content, and the content; an int64 is a varint of its
64-bit two's complement (10 bytes when negative), a float its 4 little-endian
bytes. Map entries come in upb's deterministic order (`map_order`).
"""

import dataclasses
from collections.abc import Sequence

import numpy as np

_TAG_1 = 0x0A  # field 1, length delimited: Example.features, Features.feature, entry key, list values
_TAG_2 = 0x12  # field 2: entry value, Feature.float_list
_TAG_3 = 0x1A  # field 3: Feature.int64_list


@dataclasses.dataclass(frozen=True)
class Column:
    """One feature of a batch of rows.

    Attributes:
      name: the feature's name.
      values: every row's values, row after row (1-D); an integer array is
        written as int64_list, a floating one as float_list (float32).
      lengths: values per row (int, one per row); a row with 0 has no
        feature (what `VarLenFeature` parses as no values).
    """

    name: str
    values: np.ndarray
    lengths: np.ndarray


def map_order(name: str) -> bytes:
    """upb's deterministic order of string map keys: bytewise, a key before its own prefixes ("ab" < "a").

    0xFF never occurs in UTF-8, so as a terminator it sorts after every byte of a longer key.
    """
    return name.encode() + b"\xff"


def encode(columns: Sequence[Column], num_rows: int) -> tuple[bytes, np.ndarray]:
    """The serialized Examples of `num_rows` rows: (buffer, offsets), row r is buffer[offsets[r]:offsets[r + 1]].

    Raises:
      ValueError: naming the column, if its lengths do not describe its values.
    """
    parts = [_ColumnPart(column, num_rows) for column in sorted(columns, key=lambda c: map_order(c.name))]
    features_len = sum((part.item_len for part in parts), np.zeros(num_rows, np.int64))
    has_features = features_len > 0
    example_len = np.where(has_features, 1 + _varint_sizes(features_len) + features_len, 0)
    offsets = np.zeros(num_rows + 1, np.int64)
    np.cumsum(example_len, out=offsets[1:])
    out = np.zeros(int(offsets[-1]), np.uint8)
    position = offsets[:-1].copy()
    rows = np.flatnonzero(has_features)
    position[rows] = _put_header(out, position[rows], _TAG_1, features_len[rows])
    for part in parts:
        position = part.write(out, position)
    return out.tobytes(), offsets


class _ColumnPart:
    """One column's lengths at every level, and its writer."""

    def __init__(self, column: Column, num_rows: int):
        lengths = np.asarray(column.lengths, np.int64)
        if lengths.shape != (num_rows,) or (lengths < 0).any() or int(lengths.sum()) != len(column.values):
            raise ValueError(
                f"Column {column.name!r}: `lengths` must give a non-negative count for each of the {num_rows} rows "
                f"summing to the {len(column.values)} values. Received {lengths.shape[0]} lengths summing to "
                f"{int(lengths.sum())}."
            )
        self.key = np.frombuffer(column.name.encode(), np.uint8)
        self.present = lengths > 0
        self.lengths = lengths
        values = np.asarray(column.values)
        if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
            self.kind = _TAG_3
            self.words = values.astype(np.int64).view(np.uint64)
            self.sizes = _varint_sizes(self.words)
            within = np.zeros(len(self.sizes) + 1, np.int64)
            np.cumsum(self.sizes, out=within[1:])
            ends = np.cumsum(lengths)
            packed_len = within[ends] - within[ends - lengths]
        elif np.issubdtype(values.dtype, np.floating):
            self.kind = _TAG_2
            with np.errstate(over="ignore"):  # beyond float32's range: infinity, as protobuf's C cast stores
                self.words = values.astype("<f4")
            packed_len = 4 * lengths
        else:
            raise ValueError(f"Column {column.name!r}: values must be integer or floating. Received {values.dtype}.")
        self.packed_len = packed_len
        self.list_len = 1 + _varint_sizes(packed_len) + packed_len
        self.feature_len = 1 + _varint_sizes(self.list_len) + self.list_len
        key_part = 2 + len(self.key)  # one-byte tag and length: a feature name is shorter than 128 bytes
        if len(self.key) > 127:
            raise ValueError(f"Column {column.name[:40]!r}...: feature names longer than 127 bytes are not supported.")
        self.entry_len = key_part + 1 + _varint_sizes(self.feature_len) + self.feature_len
        self.item_len = np.where(self.present, 1 + _varint_sizes(self.entry_len) + self.entry_len, 0)

    def write(self, out: np.ndarray, position: np.ndarray) -> np.ndarray:
        """Writes this column's entries at each present row's `position`; returns the positions after them."""
        rows = np.flatnonzero(self.present)
        at = position[rows]
        at = _put_header(out, at, _TAG_1, self.entry_len[rows])
        at = _put_header(out, at, _TAG_1, np.full(len(rows), len(self.key), np.int64))
        out[at[:, None] + np.arange(len(self.key))] = self.key
        at = at + len(self.key)
        at = _put_header(out, at, _TAG_2, self.feature_len[rows])
        at = _put_header(out, at, self.kind, self.list_len[rows])
        at = _put_header(out, at, _TAG_1, self.packed_len[rows])
        # Where each value goes: its row's payload start plus the bytes of the values before it in that row.
        row_of_value = np.repeat(rows, self.lengths[rows])
        payload = np.zeros(len(position), np.int64)
        payload[rows] = at
        if self.kind == _TAG_3:
            before = np.cumsum(self.sizes) - self.sizes
            row_start = np.repeat(before[np.cumsum(self.lengths[rows]) - self.lengths[rows]], self.lengths[rows])
            _put_varints(out, payload[row_of_value] + before - row_start, self.words, self.sizes)
        else:
            rank = np.arange(len(row_of_value)) - np.repeat(
                np.cumsum(self.lengths[rows]) - self.lengths[rows], self.lengths[rows]
            )
            at_value = payload[row_of_value] + 4 * rank
            out[at_value[:, None] + np.arange(4)] = self.words.view(np.uint8).reshape(-1, 4)
        position = position.copy()
        position[rows] += self.item_len[rows]
        return position


def _varint_sizes(numbers: np.ndarray) -> np.ndarray:
    """Bytes of each varint: 1 + one per 7 bits above the first 7 (of the 64-bit pattern)."""
    words = np.asarray(numbers).astype(np.int64).view(np.uint64)
    sizes = np.ones(len(words), np.int64)
    top = int(words.max()) if len(words) else 0
    for k in range(1, 10):
        if top < 1 << (7 * k):  # no varint longer than k bytes: skip the remaining comparisons
            break
        sizes += words >= np.uint64(1 << (7 * k))
    return sizes


def _put_varints(out: np.ndarray, at: np.ndarray, words: np.ndarray, sizes: np.ndarray) -> None:
    """Writes each varint of `words` (uint64) at `at`: 7 bits a byte, low first, high bit set but on the last."""
    longest = int(sizes.max()) if len(sizes) else 0
    if longest == 1:  # every value below 128: one byte each, the value itself
        out[at] = words
        return
    for k in range(longest):
        mask = sizes > k
        byte = (words[mask] >> np.uint64(7 * k)) & np.uint64(0x7F)
        byte |= (sizes[mask] > k + 1).astype(np.uint64) << np.uint64(7)
        out[at[mask] + k] = byte


def _put_header(out: np.ndarray, at: np.ndarray, tag: int, length: np.ndarray) -> np.ndarray:
    """Writes `tag` and the varint `length` at each of `at`; returns the positions after them."""
    out[at] = tag
    sizes = _varint_sizes(length)
    _put_varints(out, at + 1, np.asarray(length, np.int64).view(np.uint64), sizes)
    return at + 1 + sizes
