"""schema.json: the description of a TFRecord impression log (docs/data.md).

```json
{
  "features": [
    {"name": "user_id",  "type": "categorical", "dtype": "int64",  "num_buckets": 200000},
    {"name": "item_cat", "type": "categorical", "dtype": "string", "num_buckets": 5000},
    {"name": "price",    "type": "numeric"},
    {"name": "history",  "type": "categorical_list", "dtype": "int64", "num_buckets": 50000,
     "max_length": 50}
  ],
  "labels": {"click": "click", "conversion": "conversion"},
  "group_key": "user_id"
}
```

A `categorical_list` feature holds a variable number of ids per impression
(a bag such as a user's recent categories); each id is hashed like a
categorical value and the embeddings are mean-pooled. At most `max_length`
values are used: the first `max_length` in the record's order. The value -1
(int64) or "" (string) means "no value" and is ignored, so padded requests and
records give the same result.

Validation is strict: an unknown key, type or dtype, a duplicate name, a missing
label mapping or a `group_key` naming no feature is a `ValueError` naming the field
and what was expected, so a typo never silently turns a feature off.
"""

import dataclasses
import json

import tensorflow as tf

from tfcvr import atomic

CATEGORICAL = "categorical"
CATEGORICAL_LIST = "categorical_list"
NUMERIC = "numeric"
FEATURE_TYPES = (CATEGORICAL, CATEGORICAL_LIST, NUMERIC)
# The "no value" entry of a categorical_list, by dtype: ignored when padding lists.
LIST_PADDING: dict[str, int | str] = {"int64": -1, "string": ""}
CATEGORICAL_DTYPES = ("int64", "string")
NUMERIC_DTYPES = ("float32",)
LABEL_KEYS = ("click", "conversion")
# Ground truth that the simulator writes; evaluation reports oracle metrics when present.
GROUND_TRUTH_FLOAT_KEYS = ("true_ctr", "true_cvr")
GROUND_TRUTH_INT_KEYS = ("potential_conversion",)

_TOP_LEVEL_KEYS = ("features", "labels", "group_key")
_FEATURE_KEYS = {
    CATEGORICAL: ("name", "type", "dtype", "num_buckets"),
    CATEGORICAL_LIST: ("name", "type", "dtype", "num_buckets", "max_length"),
    NUMERIC: ("name", "type", "dtype"),
}


@dataclasses.dataclass(frozen=True)
class Feature:
    """One input feature: categorical id(s) hashed into `num_buckets`, or a float."""

    name: str
    type: str
    dtype: str
    num_buckets: int | None = None
    max_length: int | None = None

    @property
    def is_categorical(self) -> bool:
        """Hashed ids: a single `categorical` value or a `categorical_list`."""
        return self.type in (CATEGORICAL, CATEGORICAL_LIST)

    @property
    def is_list(self) -> bool:
        return self.type == CATEGORICAL_LIST

    @property
    def padding(self) -> int | str:
        """The value that means "no value" in a categorical_list."""
        return LIST_PADDING[self.dtype]

    @property
    def tf_dtype(self) -> tf.DType:
        return {"int64": tf.int64, "string": tf.string, "float32": tf.float32}[self.dtype]

    def to_dict(self) -> dict:
        config: dict[str, str | int | None] = {"name": self.name, "type": self.type, "dtype": self.dtype}
        if self.is_categorical:
            config["num_buckets"] = self.num_buckets
        if self.is_list:
            config["max_length"] = self.max_length
        return config


@dataclasses.dataclass(frozen=True)
class Schema:
    """Features, label keys and the optional GAUC `group_key` of a data set."""

    features: tuple
    labels: dict
    group_key: str | None = None

    @property
    def categorical(self) -> tuple:
        return tuple(f for f in self.features if f.is_categorical)

    @property
    def lists(self) -> tuple:
        return tuple(f for f in self.features if f.is_list)

    @property
    def numeric(self) -> tuple:
        return tuple(f for f in self.features if not f.is_categorical)

    @property
    def feature_names(self) -> tuple:
        return tuple(f.name for f in self.features)

    def to_dict(self) -> dict:
        config = {
            "features": [f.to_dict() for f in self.features],
            "labels": dict(self.labels),
        }
        if self.group_key is not None:
            config["group_key"] = self.group_key
        return config

    @classmethod
    def from_dict(cls, config: object, source: str = "schema") -> "Schema":
        """Validates `config` (the parsed schema.json); `source` names it in errors."""
        if not isinstance(config, dict):
            raise ValueError(
                f"{source}: expected a JSON object with keys {list(_TOP_LEVEL_KEYS)}. Received: {type(config).__name__}"
            )
        _reject_unknown_keys(config, _TOP_LEVEL_KEYS, f"{source}")
        if "features" not in config:
            raise ValueError(f"{source}: missing required key 'features' (a non-empty list).")
        raw_features = config["features"]
        if not isinstance(raw_features, list) or not raw_features:
            raise ValueError(
                f"{source}: 'features' must be a non-empty list of feature objects. Received: {raw_features!r}"
            )
        features = tuple(_parse_feature(raw, f"{source}: features[{index}]") for index, raw in enumerate(raw_features))
        names = [f.name for f in features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{source}: duplicate feature name(s) {duplicates}; names must be unique.")
        labels = _parse_labels(config.get("labels"), source)
        clashes = sorted(set(names) & set(labels.values()))
        if clashes:
            raise ValueError(
                f"{source}: feature name(s) {clashes} are also label keys; "
                "a label must not be fed to the model as a feature."
            )
        group_key = config.get("group_key")
        if group_key is not None and group_key not in names:
            raise ValueError(f"{source}: 'group_key' must name one of the features {names}. Received: {group_key!r}")
        if group_key is not None and features[names.index(group_key)].is_list:
            raise ValueError(f"{source}: 'group_key' {group_key!r} is a categorical_list; a group is one value.")
        return cls(features=features, labels=labels, group_key=group_key)


def load_schema(path: str) -> Schema:
    """Reads and validates a schema.json (local or gs:// path)."""
    if not tf.io.gfile.exists(path):
        raise ValueError(f"Schema file {path} does not exist.")
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"Schema file {path} is not valid JSON: {e}") from e
    return Schema.from_dict(config, source=path)


def save_schema(schema: Schema, path: str) -> None:
    atomic.write_file(path, json.dumps(schema.to_dict(), indent=2) + "\n")


def _reject_unknown_keys(config: dict, allowed, where: str) -> None:
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected only {list(allowed)}.")


def _parse_feature(raw, where: str) -> Feature:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object. Received: {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: 'name' must be a non-empty string. Received: {name!r}")
    where = f"{where} ('{name}')"
    feature_type = raw.get("type")
    if feature_type not in FEATURE_TYPES:
        raise ValueError(f"{where}: 'type' must be one of {list(FEATURE_TYPES)}. Received: {feature_type!r}")
    _reject_unknown_keys(raw, _FEATURE_KEYS[feature_type], where)
    if feature_type == NUMERIC:
        dtype = raw.get("dtype", "float32")
        if dtype not in NUMERIC_DTYPES:
            raise ValueError(
                f"{where}: 'dtype' of a numeric feature must be one of {list(NUMERIC_DTYPES)}. Received: {dtype!r}"
            )
        return Feature(name=name, type=feature_type, dtype=dtype)
    dtype = raw.get("dtype")
    if dtype not in CATEGORICAL_DTYPES:
        raise ValueError(
            f"{where}: 'dtype' of a categorical feature must be one of {list(CATEGORICAL_DTYPES)}. Received: {dtype!r}"
        )
    num_buckets = raw.get("num_buckets")
    if not _is_positive_int(num_buckets):
        raise ValueError(f"{where}: 'num_buckets' must be a positive integer. Received: {num_buckets!r}")
    if feature_type == CATEGORICAL:
        return Feature(name=name, type=feature_type, dtype=dtype, num_buckets=num_buckets)
    max_length = raw.get("max_length")
    if not _is_positive_int(max_length):
        raise ValueError(
            f"{where}: 'max_length' (values used per impression) must be a positive integer. Received: {max_length!r}"
        )
    return Feature(name=name, type=feature_type, dtype=dtype, num_buckets=num_buckets, max_length=max_length)


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _parse_labels(raw, source: str) -> dict:
    where = f"{source}: labels"
    if raw is None:
        raise ValueError(
            f"{source}: missing required key 'labels', a mapping like "
            '{"click": "click", "conversion": "conversion"}.'
        )
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object mapping {list(LABEL_KEYS)} to keys. Received: {raw!r}")
    _reject_unknown_keys(raw, LABEL_KEYS, where)
    for key in LABEL_KEYS:
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            raise ValueError(
                f"{where}: missing mapping for '{key}' (the tf.Example key holding the {key} label). "
                f"Received: {value!r}"
            )
    if raw["click"] == raw["conversion"]:
        raise ValueError(f"{where}: 'click' and 'conversion' map to the same key {raw['click']!r}.")
    return {key: raw[key] for key in LABEL_KEYS}
