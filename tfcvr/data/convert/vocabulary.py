"""Measures the categorical features a converter writes and turns that into schema.json.

`num_buckets` of a categorical feature is its number of distinct values times
`bucket_factor` (hashing n distinct values into 2n buckets leaves about 79% of
them without a collision, into n buckets about 63%), unless given per feature.
`max_length` of a categorical_list is the longest list written.
"""

import dataclasses
import math
from collections.abc import Iterable, Mapping

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

    def observe(self, name: str, value: int | str | list[int]) -> None:
        """One categorical value, or the list of one categorical_list."""
        if name in self._longest:
            if len(value) > self._longest[name]:
                self._longest[name] = len(value)
            self._values[name].update(value)
        else:
            self._values[name].add(value)

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
        unknown = sorted(set(overrides) - set(self._values))
        if unknown:
            raise ValueError(
                f"--num_buckets names {unknown}, which are not categorical features of this "
                f"conversion; expected some of {sorted(self._values)}."
            )
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
