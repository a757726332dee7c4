"""Measures the features a converter writes and turns that into schema.json.

`num_buckets` of a categorical feature is its number of distinct values times
`bucket_factor` (hashing n distinct values into 2n buckets leaves about 79% of
them without a collision, into n buckets about 63%), unless given per feature.
`max_length` of a categorical_list is the longest list written. Numeric
features get their mean and (population) variance over the written rows, for
the report (the model standardises with `tfcvr.data.numeric_statistics`).

Each chunk of the input is measured by its own counter and the counters are
merged: distinct values by set union (exact; the union of a feature's values
is held by one process), numeric moments per chunk combined in chunk order
(Chan, Golub & LeVeque's pairwise update), so the result does not depend on
which process measured which chunk.
"""

import array
import dataclasses
import math
from collections.abc import Iterable, Mapping

import numpy as np

from tfcvr.data import schema as schema_lib


class VocabularyCounter:
    """Distinct values of each categorical feature and the longest list of each categorical_list.

    Args:
      features: `schema.Feature`s the converter writes; `num_buckets` and
        `max_length` are ignored (they are measured).
    """

    def __init__(self, features):
        self.features = tuple(features)
        self._values = {f.name: set() for f in self.features if f.is_categorical}
        self._longest = {f.name: 0 for f in self.features if f.is_list}
        self._numbers = {f.name: array.array("d") for f in self.features if f.type == schema_lib.NUMERIC}
        self._moments = {name: {} for name in self._numbers}  # {name: {chunk index: (n, mean, m2)}}

    def observe(self, name: str, value: int | str | list[int]) -> None:
        """One categorical value, or the list of one categorical_list."""
        if name in self._longest:
            if not isinstance(value, list):
                raise TypeError(f"{name!r} is a categorical_list: observe the list of its ids. Received: {value!r}")
            if len(value) > self._longest[name]:
                self._longest[name] = len(value)
            self._values[name].update(value)
        else:
            self._values[name].add(value)

    def observe_column(self, name: str, values: np.ndarray, lengths: np.ndarray | None = None) -> None:
        """The values of many rows at once: one per row, or a categorical_list's with `lengths` (values per row)."""
        self._values[name].update(np.unique(values).tolist())
        if name in self._longest and lengths is not None and len(lengths):
            self._longest[name] = max(self._longest[name], int(lengths.max()))

    def observe_numbers_column(self, name: str, values: np.ndarray) -> None:
        """Numeric feature `name`'s values of many written rows, in row order."""
        self._numbers[name].frombytes(np.ascontiguousarray(values, np.float64).tobytes())

    def observe_numbers(self, record: Mapping) -> None:
        """The numeric features' values of one written row (those present in `record`)."""
        for name, numbers in self._numbers.items():
            value = record.get(name)
            if value is not None:
                numbers.append(value)

    def finish_chunk(self, chunk_index: int) -> None:
        """Turns the numbers observed since the last call into chunk `chunk_index`'s moments."""
        for name, numbers in self._numbers.items():
            if numbers:
                column = np.array(numbers, dtype=np.float64)
                mean = float(column.mean())
                self._moments[name][chunk_index] = (len(column), mean, float(np.square(column - mean).sum()))
            del numbers[:]

    def merge(self, other: "VocabularyCounter") -> "VocabularyCounter":
        """Adds `other`'s observations (of another chunk) into this counter (returns self)."""
        for name, values in other._values.items():
            self._values[name] |= values
        for name, longest in other._longest.items():
            self._longest[name] = max(self._longest[name], longest)
        for name, moments in other._moments.items():
            self._moments[name].update(moments)
        return self

    def numeric(self) -> dict:
        """{numeric feature: {"mean", "variance"}} over every finished chunk, merged in chunk order."""
        result = {}
        for name, moments in self._moments.items():
            n, mean, m2 = 0, 0.0, 0.0
            for chunk_index in sorted(moments):
                n_b, mean_b, m2_b = moments[chunk_index]
                delta = mean_b - mean
                total = n + n_b
                mean += delta * n_b / total
                m2 += m2_b + delta * delta * n * n_b / total
                n = total
            result[name] = {"mean": mean, "variance": m2 / n} if n else {"mean": None, "variance": None}
        return result

    def distinct(self) -> dict:
        return {name: len(values) for name, values in self._values.items()}

    def longest(self) -> dict:
        return dict(self._longest)

    def schema(
        self,
        labels: dict,
        bucket_factor: float = 2.0,
        num_buckets: Mapping[str, int] | None = None,
        group_key: str | None = None,
    ) -> schema_lib.Schema:
        """The measured schema; `num_buckets` ({name: n}) overrides the measured size per feature."""
        if bucket_factor <= 0:
            raise ValueError(f"`bucket_factor` must be positive. Received: {bucket_factor}")
        overrides = dict(num_buckets or {})
        check_bucket_names(self.features, overrides)
        features = []
        for feature in self.features:
            if feature.is_categorical:
                buckets = overrides.get(
                    feature.name, max(1, math.ceil(len(self._values[feature.name]) * bucket_factor))
                )
                feature = dataclasses.replace(feature, num_buckets=buckets)
            if feature.is_list:
                feature = dataclasses.replace(feature, max_length=max(1, self._longest[feature.name]))
            features.append(feature)
        return schema_lib.Schema(features=tuple(features), labels=dict(labels), group_key=group_key)


def check_bucket_names(features: Iterable[schema_lib.Feature], num_buckets: Mapping[str, int]) -> None:
    """`--num_buckets` may only name categorical features of the conversion (checked before converting)."""
    categorical = sorted(f.name for f in features if f.is_categorical)
    unknown = sorted(set(num_buckets) - set(categorical))
    if unknown:
        raise ValueError(
            f"--num_buckets names {unknown}, which are not categorical features of this "
            f"conversion; expected some of {categorical}."
        )


def check_same_features(given: schema_lib.Schema, features: Iterable[schema_lib.Feature], source: str) -> None:
    """A schema given with --schema (e.g. train's, for the test file) must declare the converter's features."""
    expected = [(f.name, f.type, f.dtype) for f in features]
    actual = [(f.name, f.type, f.dtype) for f in given.features]
    if expected != actual:
        missing = sorted({e[0] for e in expected} ^ {a[0] for a in actual})
        raise ValueError(
            f"{source} does not describe the features this conversion writes: "
            f"expected (name, type, dtype) {expected}, found {actual}"
            + (f"; names in only one of them: {missing}" if missing else "")
        )
