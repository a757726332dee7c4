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


def test_every_method_module_is_imported_by_the_package():
    # A method registers when its module is imported; `tfcvr.models` imports each one, or the name is unknown to
    # `models.build`, the command line and the leaderboard.
    import ast
    import pathlib

    package = pathlib.Path(models.__file__).parent
    registering = {
        path.stem for path in package.glob("*.py") if "@registry.register(" in path.read_text(encoding="utf-8")
    }
    tree = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "tfcvr.models"
        for alias in node.names
    }
    assert registering, "no module registers a method"
    assert registering <= imported, f"tfcvr/models/__init__.py does not import {sorted(registering - imported)}"
