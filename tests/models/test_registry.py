import pytest

from tests.conftest import TINY_SCHEMA
from tfcvr import models


def test_registered_names_and_unknown_name_lists_them():
    assert {"naive", "esmm"} <= set(models.names())
    with pytest.raises(
        ValueError, match=r"Unknown model 'esmmm'. Did you mean 'esmm'\? Registered models: .*esmm.*naive"
    ):
        models.get("esmmm")


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="already registered"):
        models.register("esmm")(type("Other", (models.CVRModel,), {}))


def test_config_round_trip():
    model = models.build(
        "naive",
        TINY_SCHEMA,
        backbone="mmoe",
        num_experts=3,
        ctr_loss_weight=0.3,
        numeric_statistics={"price": [2.0, 4.0]},
    )
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    with pytest.raises(ValueError, match=r"unknown numeric feature\(s\) \['weight'\]"):
        models.build("naive", TINY_SCHEMA, numeric_statistics={"weight": [0.0, 1.0]})
