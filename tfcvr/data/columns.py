"""Rows of raw feature values (dicts) -> typed feature columns: the inputs of a raw-feature model."""

from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from tfcvr.data import schema as schema_lib


def feature_columns(candidates: Iterable[object], schema: schema_lib.Schema | None = None) -> dict:
    """{feature: 1-D numpy array} from dict candidates (the `predict` signature's inputs).

    With a `schema`, every schema feature must be present and gets the
    schema's dtype (int64 or string ids, float32 numerics); keys that are not
    features (labels) are dropped; a categorical_list feature takes a list of
    ids per candidate and becomes a [candidates, longest list] array padded
    with the feature's padding value (-1 or ""). Without one, every key of the first
    candidate is a feature and its dtype follows the values: all int -> int64,
    any float -> float32, str/bytes -> string. A candidate that is not a dict
    (a tf.Example, serialized bytes) is a TypeError naming it.
    """
    rows: list[dict] = []
    for index, candidate in enumerate(candidates):
        if not isinstance(candidate, dict):
            raise TypeError(
                f"The predict signature takes dict candidates; candidate {index} is a "
                f"{type(candidate).__name__}. Use the serving_default signature for tf.Examples."
            )
        rows.append(candidate)
    if not rows:
        raise ValueError("No candidates: the predict signature needs at least one to know the features.")
    dtypes = {f.name: f.tf_dtype for f in schema.features} if schema is not None else None
    lists = {f.name: f.padding for f in schema.lists} if schema is not None else {}
    names = list(dtypes) if dtypes is not None else list(rows[0])
    columns = {}
    for name in names:
        missing = [i for i, c in enumerate(rows) if name not in c]
        if missing:
            raise ValueError(f"Feature {name!r} is missing from candidate(s) {missing[:10]}.")
        values = [c[name] for c in rows]
        if dtypes is not None:
            dtype = dtypes[name]
            numpy_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
            if name in lists:
                columns[name] = _padded(name, values, lists[name], numpy_dtype)
            else:
                columns[name] = np.array(values, dtype=numpy_dtype)
        else:
            columns[name] = _infer_column(name, values)
    return columns


def _padded(name, values, padding, numpy_dtype):
    for index, value in enumerate(values):
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise TypeError(
                f"Feature {name!r} is a categorical_list: candidate {index} must give a list of ids. "
                f"Received: {value!r}"
            )
    width = max(len(v) for v in values)
    column = np.full((len(values), width), padding, dtype=numpy_dtype)
    for row, value in enumerate(values):
        column[row, : len(value)] = value
    return column


def _infer_column(name, values):
    if all(isinstance(v, (str, bytes)) for v in values):
        return np.array(values, dtype=object)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.float32)
    raise TypeError(
        f"Feature {name!r} mixes value types {sorted({type(v).__name__ for v in values})}; "
        "give a schema or use one type per feature."
    )
