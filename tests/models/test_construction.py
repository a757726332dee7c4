"""How every method is constructed: typed options declared once, presets alike, compile ready to train."""

import dataclasses
import typing

import keras
import numpy as np
import pytest

from tests.conftest import TINY_SCHEMA
from tfcvr import models
from tfcvr.models.base import MethodOptions, ModelSpec

SMALL = {"embedding_dim": 4, "hidden_units": (8,), "tower_units": (4, 4)}


@pytest.mark.parametrize("name", models.names())
def test_options_are_attributes_config_and_round_trip(name):
    model = models.build(name, TINY_SCHEMA, **SMALL)
    assert isinstance(model.architecture, ModelSpec) and model.architecture.tower_units == (4, 4)
    config = model.get_config()
    assert type(model.options) is type(model).options_class
    for field in dataclasses.fields(model.options):
        assert config[field.name] == getattr(model.options, field.name)
    assert type(model).configuration(TINY_SCHEMA, **SMALL) == config  # the config without building the model
    # Built again in the same process (no clear_session): every layer is named, so no global counter shifts a path.
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert [v.path for v in clone.weights] == [v.path for v in model.weights]  # same graph, same checkpoint names


@pytest.mark.parametrize("name", models.names())
def test_compile_builds_every_optimizer(name):
    keras.utils.set_random_seed(0)
    model = models.build(name, TINY_SCHEMA, **SMALL)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    optimizers = [model.optimizer] + [
        getattr(model, o) for o in ("teacher_optimizer", "imputation_optimizer") if hasattr(model, o)
    ]
    assert all(optimizer.built and optimizer.variables for optimizer in optimizers)
    # Each variable is updated by exactly one optimizer: their (Adam moment) slots partition the trainables.
    slots = sum(len(optimizer.variables) for optimizer in optimizers) - 2 * len(optimizers)  # minus iterations, lr
    assert slots == 2 * len(model.trainable_variables)


@pytest.mark.parametrize("name", models.names())
def test_options_are_typed_frozen_dataclasses(name):
    options_class = models.get(name).options_class
    assert issubclass(options_class, MethodOptions) and dataclasses.is_dataclass(options_class)
    hints = typing.get_type_hints(options_class)
    # The kinds --model_params parses (trainer/method_params.py).
    assert all(hints[f.name] in (bool, int, float, str, float | None) for f in dataclasses.fields(options_class))
    model = models.build(name, TINY_SCHEMA, **SMALL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.options.ctr_loss_weight = 2.0


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"dropout": 1.0}, r"`dropout` must be in \[0, 1\)"),
        ({"hidden_units": (8, 0)}, r"`hidden_units` must all be positive"),
        ({"embedding_dim": 0}, r"`embedding_dim` must be positive"),
        ({"backbone": "ple2"}, r"Unknown backbone 'ple2'"),
        ({"vie_layers": 3}, r"`vie_layers` must be between 1 and the 2 tower layers"),
        ({"teacher_population": "some"}, r"`teacher_population` must be one of"),
        ({"vie_reduction": "max"}, r"`vie_reduction` must be one of"),
        ({"backbone": "mmoe", "hidden_units": ()}, r"`hidden_units` must name at least one layer"),
    ],
)
def test_configuration_validates_every_argument_without_building(arguments, message):
    with pytest.raises(ValueError, match=message):
        models.get("evi").configuration(TINY_SCHEMA, **{**SMALL, **arguments})


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"reversal_scale": -1.0}, r"`reversal_scale` must be non-negative"),
        ({"teacher_dropout": 1.0}, r"`teacher_dropout` must be in \[0, 1\) or None"),
    ],
)
def test_ukd_options_are_checked_before_any_layer(arguments, message):
    with pytest.raises(ValueError, match=message):
        models.get("ukd").configuration(TINY_SCHEMA, **{**SMALL, **arguments})


def test_the_default_backbone_is_the_methods_first():
    assert models.get("mmoe_ddpo").configuration(TINY_SCHEMA, **SMALL)["backbone"] == "mmoe"
    assert models.get("ddpo").configuration(TINY_SCHEMA, **SMALL)["backbone"] == "shared_bottom"


def test_an_unknown_argument_names_the_accepted_ones():
    with pytest.raises(TypeError, match=r"ChorusCVR has no argument\(s\) \['use_ndmm'\]; .* accepts \[.*'use_ndm'"):
        models.build("chorus", TINY_SCHEMA, **SMALL, use_ndmm=False)


def test_a_subclass_option_changes_its_parents_default_only():
    ddpo = models.get("ddpo").options_class()
    assert (ddpo.propensity_floor, ddpo.normalization) == (1e-6, "clicked_rows")
    assert models.get("multi_ipw").options_class().propensity_floor == 0.01


@pytest.mark.parametrize(
    "preset, parent, refused, message",
    [
        ("ipw_naive", "multi_ipw", {"propensity": "shared"}, "ipw_naive is multi_ipw with propensity='separate'"),
        ("escm2_ipw", "multi_ipw", {"ctcvr_loss_weight": 0.0}, "escm2_ipw is multi_ipw with ctcvr_loss_weight > 0"),
        ("escm2_dr", "multi_dr", {"ctcvr_loss_weight": 0.0}, "escm2_dr is multi_dr with ctcvr_loss_weight > 0"),
        ("ukd_base", "ukd", {"uncertainty": "two_predictors"}, "ukd_base is ukd with uncertainty='none'"),
        ("ukd_mc_dropout", "ukd", {"uncertainty": "none"}, "ukd_mc_dropout is ukd with uncertainty='mc_dropout'"),
        ("mmoe_ddpo", "ddpo", {"backbone": "shared_bottom"}, "mmoe_ddpo is ddpo with backbone='mmoe'"),
    ],
)
def test_presets_accept_their_parents_arguments_and_refuse_another_method(preset, parent, refused, message):
    with pytest.raises(ValueError, match=f"{message}; for .* use model '{parent}'"):
        models.build(preset, TINY_SCHEMA, **SMALL, **refused)
    # Any other argument of the parent is accepted and lands in the config.
    model = models.build(preset, TINY_SCHEMA, **SMALL, ctr_loss_weight=0.25)
    assert model.get_config()["ctr_loss_weight"] == 0.25
    assert isinstance(model, models.get(parent)) and type(model) is models.get(preset)


def test_preset_defaults_can_be_changed():
    config = models.build("escm2_ipw", TINY_SCHEMA, **SMALL).get_config()
    assert config["cvr_loss_weight"] == 0.5 and config["ctcvr_loss_weight"] == 0.5
    changed = models.build("escm2_ipw", TINY_SCHEMA, **SMALL, ctcvr_loss_weight=0.2).get_config()
    assert changed["ctcvr_loss_weight"] == 0.2 and changed["propensity"] == "shared"
    assert models.build("ipw_naive", TINY_SCHEMA, **SMALL, propensity="separate").get_config()["propensity"] == (
        "separate"
    )
    np.testing.assert_equal(models.build("mmoe_ddpo", TINY_SCHEMA, **SMALL).get_config()["backbone"], "mmoe")
