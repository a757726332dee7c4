"""Writing rows or columns of values as (sharded) TFRecord files of tf.train.Example."""

import numpy as np
import tensorflow as tf


def shard_paths(path_prefix: str, num_shards: int) -> list:
    """`<prefix>-00000-of-0000N.tfrecord` names, the layout tf.data globs expect."""
    return [f"{path_prefix}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]


def to_example(row: dict) -> tf.train.Example:
    """One example from {key: scalar or list}: int -> int64_list, float -> float_list, str/bytes -> bytes_list.

    A list (or tuple / 1-D array) gives a multi-valued feature of its
    elements' kind; an empty list gives no feature (what `VarLenFeature`
    parses as no values).
    """
    example = tf.train.Example()
    feature_map = example.features.feature
    for key, value in row.items():
        kind = type(value)
        # The common cases first, by exact type (converters write millions of rows): ids, labels, floats, id lists.
        if kind is int:
            feature_map[key].int64_list.value.append(value)
        elif kind is float:
            feature_map[key].float_list.value.append(value)
        elif kind is list and value and type(value[0]) is int:
            _extend(feature_map, key, value, "int64")
        elif isinstance(value, (list, tuple, np.ndarray)):
            if len(value):
                _extend(feature_map, key, value)
        else:
            _append(feature_map, key, _value_kind(key, value), value)
    return example


def serialize(row: dict) -> bytes:
    """`to_example(row)` serialized with its feature map in key order.

    Protobuf's default map order is an implementation detail that differs
    between processes; sorted keys make a record's bytes a function of its
    values, so conversions split over processes write identical files.
    """
    return to_example(row).SerializeToString(deterministic=True)


def write_sharded(columns: dict, path_prefix: str, num_shards: int) -> list:
    """Writes equally long columns row by row, row i to shard i % num_shards.

    Args:
      columns: {key: 1-D numpy array}; integer arrays become int64_list,
        floating arrays float_list, string/bytes arrays bytes_list.
      path_prefix: local or gs:// prefix of the shard files.
      num_shards: number of files.

    Returns:
      The shard paths.
    """
    lengths = {key: len(values) for key, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"All columns must have the same length. Received lengths: {lengths}")
    if num_shards < 1:
        raise ValueError(f"`num_shards` must be positive. Received: {num_shards}")
    num_rows = next(iter(lengths.values()))
    kinds = {key: _column_kind(key, values) for key, values in columns.items()}
    # Python scalars once, not numpy scalars per row: proto building is much faster with Python scalars.
    values = {key: np.asarray(column).tolist() for key, column in columns.items()}
    paths = shard_paths(path_prefix, num_shards)
    writers = [tf.io.TFRecordWriter(path) for path in paths]
    try:
        for row in range(num_rows):
            example = tf.train.Example()
            for key, kind in kinds.items():
                _append(example.features.feature, key, kind, values[key][row])
            writers[row % num_shards].write(example.SerializeToString())
    finally:
        for writer in writers:
            writer.close()
    return paths


def _append(feature_map, key: str, kind: str, value) -> None:
    if kind == "bytes":
        feature_map[key].bytes_list.value.append(value.encode() if isinstance(value, str) else value)
    elif kind == "int64":
        feature_map[key].int64_list.value.append(int(value))
    else:
        feature_map[key].float_list.value.append(float(value))


def _extend(feature_map, key: str, values, kind: str | None = None) -> None:
    """A whole list at once (the list's kind is its first value's; protobuf rejects a mix)."""
    kind = kind or _value_kind(key, values[0])
    try:
        if kind == "bytes":
            feature_map[key].bytes_list.value.extend(v.encode() if isinstance(v, str) else v for v in values)
        elif kind == "int64":
            feature_map[key].int64_list.value.extend(values)
        else:
            feature_map[key].float_list.value.extend(values)
    except TypeError as e:
        raise TypeError(
            f"Feature {key!r}: every value of a list must be of the first one's kind ({kind}): {e}"
        ) from None


def _value_kind(key: str, value) -> str:
    if isinstance(value, (bytes, str)):
        return "bytes"
    if isinstance(value, (bool, int, np.integer)):
        return "int64"
    if isinstance(value, (float, np.floating)):
        return "float"
    raise TypeError(f"Feature {key!r}: unsupported value type {type(value).__name__}.")


def _column_kind(key: str, values) -> str:
    dtype = np.asarray(values).dtype
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        return "int64"
    if np.issubdtype(dtype, np.floating):
        return "float"
    if dtype.kind in ("U", "S", "O"):
        return "bytes"
    raise TypeError(f"Column {key!r}: unsupported dtype {dtype}.")
