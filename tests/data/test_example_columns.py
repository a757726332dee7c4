import math

import numpy as np
import pytest
import tensorflow as tf

from tfcvr.data import example_columns, example_writer

# Prefixes of one another ("a", "aa", "aab"): protobuf (upb) puts a key before its own prefixes.
NAMES = ["a", "aa", "aab", "ab", "b", "click", "D508", "205", "2", "sample_id", "é", "x" * 127, "Z", "_"]
EDGE_INTS = [0, 1, 127, 128, 16383, 16384, 2**31, 2**62, 2**63 - 1, -1, -(2**63), -300]
EDGE_FLOATS = [0.0, -0.0, 1e-45, 3.4e38, 1e39, -1e39, math.inf, -math.inf, math.nan]


def _random_column(rng, name, num_rows):
    lengths = rng.choice([0, 1, 1, 2, 5, 20, 200], size=num_rows)
    if rng.random() < 0.5:
        values = np.where(
            rng.random(lengths.sum()) < 0.3,
            rng.choice(EDGE_INTS, size=lengths.sum()),
            rng.integers(-(2**40), 2**40, size=lengths.sum()),
        ).astype(np.int64)
    else:
        values = np.where(
            rng.random(lengths.sum()) < 0.3, rng.choice(EDGE_FLOATS, size=lengths.sum()), rng.normal(size=lengths.sum())
        )
    return example_columns.Column(name, values, lengths)


def _rows(columns, num_rows):
    """The rows as dicts of Python values, as a row-by-row converter would hold them."""
    rows = [{} for _ in range(num_rows)]
    for column in columns:
        ends = np.cumsum(column.lengths)
        for r in range(num_rows):
            rows[r][column.name] = column.values[ends[r] - column.lengths[r] : ends[r]].tolist()
    return rows


def test_bytes_equal_protobufs_deterministic_serialization_on_random_batches():
    rng = np.random.default_rng(0)
    for _ in range(40):
        num_rows = int(rng.integers(0, 30))
        names = rng.choice(NAMES, size=int(rng.integers(0, 8)), replace=False)
        columns = [_random_column(rng, str(name), num_rows) for name in names]
        buffer, offsets = example_columns.encode(columns, num_rows)
        assert len(offsets) == num_rows + 1 and offsets[-1] == len(buffer)
        for r, row in enumerate(_rows(columns, num_rows)):
            with np.errstate(over="ignore"):
                expected = example_writer.to_example(row).SerializeToString(deterministic=True)
            assert buffer[offsets[r] : offsets[r + 1]] == expected, (r, row)


def test_a_row_without_values_is_the_empty_example_and_lengths_beyond_one_varint_byte():
    ids = np.arange(10**6, 10**6 + 300, dtype=np.int64)
    columns = [
        example_columns.Column("ids", ids, np.array([0, 300])),
        example_columns.Column("x", np.full(40, 0.25), np.array([0, 40])),
    ]
    buffer, offsets = example_columns.encode(columns, 2)
    assert offsets.tolist()[:2] == [0, 0]
    assert tf.train.Example.FromString(b"") == tf.train.Example()
    feature = tf.train.Example.FromString(buffer[offsets[1] :]).features.feature
    assert list(feature["ids"].int64_list.value) == ids.tolist()
    assert list(feature["x"].float_list.value) == [0.25] * 40


@pytest.mark.parametrize(
    "column, message",
    [
        (example_columns.Column("a", np.arange(3), np.array([1, 1])), "'a': `lengths` must give"),
        (example_columns.Column("a", np.arange(3), np.array([4, -1])), "'a': `lengths` must give"),
        (
            example_columns.Column("a", np.array(["x", "y"]), np.array([1, 1])),
            "'a': values must be integer or floating",
        ),
        (example_columns.Column("a" * 128, np.arange(2), np.array([1, 1])), "longer than 127 bytes"),
    ],
)
def test_bad_columns_are_refused_naming_the_column(column, message):
    with pytest.raises(ValueError, match=message):
        example_columns.encode([column], 2)
