"""trainer.method_params: method arguments from the command line, typed by the method's constructor."""

import pytest
from absl import app

from tfcvr import models
from trainer import method_params


def test_every_registered_method_argument_has_a_type():
    for name in models.names():
        arguments = method_params.method_arguments(models.get(name))
        assert all(kind is not None for kind in arguments.values()), name
    ukd = method_params.method_arguments(models.get("ukd"))
    assert (
        ukd["detach_uncertainty_weight"] is bool
        and ukd["teacher_epochs"] is int
        and ukd["distillation_loss_weight"] is float
    )
    assert "embedding_dim" not in ukd  # the architecture has its own flags


def test_values_are_parsed_as_their_argument_type():
    params = method_params.parse_model_params(
        [
            "teacher_dropout=none",
            "distillation_loss_weight=1",
            "detach_uncertainty_weight=False",
            "uncertainty=mc_dropout",
            "teacher_epochs=2",
            "ctr_loss_weight=0.25",
        ],
        models.get("ukd"),
    )
    assert params == {
        "teacher_dropout": None,
        "distillation_loss_weight": 1.0,
        "detach_uncertainty_weight": False,
        "uncertainty": "mc_dropout",
        "teacher_epochs": 2,
        "ctr_loss_weight": 0.25,
    }
    assert isinstance(params["distillation_loss_weight"], float) and params["detach_uncertainty_weight"] is False
    assert method_params.parse_model_params(["teacher_dropout=0.3"], models.get("ukd")) == {"teacher_dropout": 0.3}


@pytest.mark.parametrize(
    "item, message",
    [
        ("use_vie=Flase", "--model_params: EVI's use_vie takes true or false. Received: 'Flase'"),
        ("ctr_loss_weight=abc", "--model_params: EVI's ctr_loss_weight takes a number. Received: 'abc'"),
        ("vie_layers=1.5", "--model_params: EVI's vie_layers takes an integer. Received: '1.5'"),
        ("vie_loss_weight", "--model_params entries are name=value. Received: 'vie_loss_weight'"),
        ("gamma=1", "--model_params: EVI has no argument 'gamma'; it accepts ["),
    ],
)
def test_bad_values_are_usage_errors_naming_argument_and_type(item, message):
    with pytest.raises(app.UsageError) as error:
        method_params.parse_model_params([item], models.get("evi"))
    assert message in str(error.value)


def test_leaderboard_entries_carry_typed_arguments():
    assert method_params.parse_method_entry("ukd[detach_uncertainty_weight=false;distillation_loss_weight=2]") == (
        "ukd",
        {"detach_uncertainty_weight": False, "distillation_loss_weight": 2.0},
    )
    assert method_params.parse_method_entry("naive") == ("naive", {})
    with pytest.raises(app.UsageError, match="expected NAME or NAME"):
        method_params.parse_method_entry("ukd[distillation_loss_weight=2")
