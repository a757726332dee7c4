import copy
import json

import pytest

from tests.conftest import TINY_SCHEMA
from tfcvr.data import schema as schema_lib


def _with(mutate):
    config = copy.deepcopy(TINY_SCHEMA)
    mutate(config)
    return config


def test_round_trip_through_file(tmp_path):
    schema = schema_lib.Schema.from_dict(TINY_SCHEMA)
    path = tmp_path / "schema.json"
    schema_lib.save_schema(schema, str(path))
    loaded = schema_lib.load_schema(str(path))
    assert loaded == schema
    assert loaded.to_dict() == {
        **TINY_SCHEMA,
        "features": [
            TINY_SCHEMA["features"][0],
            TINY_SCHEMA["features"][1],
            {"name": "price", "type": "numeric", "dtype": "float32"},
        ],
    }
    assert [f.name for f in loaded.categorical] == ["user_id", "item_cat"]
    assert [f.name for f in loaded.numeric] == ["price"]
    assert loaded.group_key == "user_id"


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(extra=1), r"unknown key\(s\) \['extra'\]"),
        (lambda c: c["features"][0].update(vocab=3), r"features\[0\] \('user_id'\): unknown key\(s\) \['vocab'\]"),
        (lambda c: c["features"][0].update(type="sequence"), r"'user_id'\): 'type' must be one of"),
        (lambda c: c["features"][1].update(dtype="int32"), r"'item_cat'\): 'dtype' of a categorical feature"),
        (lambda c: c["features"][2].update(dtype="float64"), r"'price'\): 'dtype' of a numeric feature"),
        (lambda c: c["features"][0].update(num_buckets=0), r"'num_buckets' must be a positive integer"),
        (lambda c: c["features"][0].pop("num_buckets"), r"'num_buckets' must be a positive integer"),
        (lambda c: c["features"][1].update(name="user_id"), r"duplicate feature name\(s\) \['user_id'\]"),
        (lambda c: c["labels"].pop("conversion"), r"missing mapping for 'conversion'"),
        (lambda c: c.pop("labels"), r"missing required key 'labels'"),
        (lambda c: c["labels"].update(purchase="buy"), r"labels: unknown key\(s\) \['purchase'\]"),
        (lambda c: c.update(group_key="session"), r"'group_key' must name one of the features"),
        (lambda c: c.update(features=[]), r"'features' must be a non-empty list"),
        (lambda c: c["features"][2].update(name="click"), r"\['click'\] are also label keys"),
    ],
)
def test_invalid_schema_names_field(mutate, expected):
    with pytest.raises(ValueError, match=expected):
        schema_lib.Schema.from_dict(_with(mutate))


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        schema_lib.load_schema(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=f"{bad} is not valid JSON"):
        schema_lib.load_schema(str(bad))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(_with(lambda c: c["features"][0].update(type="dense"))))
    with pytest.raises(ValueError, match=rf"{wrong}: features\[0\]"):
        schema_lib.load_schema(str(wrong))
