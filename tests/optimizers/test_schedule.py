"""The learning-rate schedules of `--learning_rate_schedule`: values by hand, errors, and what carries them."""

import math

import keras
import numpy as np
import pytest

from tests.conftest import TINY_SCHEMA
from tfcvr import models
from tfcvr.optimizers import learning_rate_schedule, make_optimizer, needs_steps_per_epoch


def test_cosine_per_epoch_decays_to_zero_within_every_epoch_and_restarts():
    schedule = learning_rate_schedule("cosine_per_epoch", 0.2, steps_per_epoch=8)
    # 0.2 · (1 + cos(π · (t mod 8) / 8)) / 2
    expected = [0.2 * (1 + math.cos(math.pi * (t % 8) / 8)) / 2 for t in range(20)]
    np.testing.assert_allclose([float(schedule(t)) for t in range(20)], expected, rtol=1e-5, atol=1e-8)  # float32
    assert float(schedule(7)) < 0.04 * 0.2 and float(schedule(8)) == pytest.approx(0.2)


def test_constant_is_the_rate_itself():
    assert learning_rate_schedule("constant", 0.01) == 0.01
    optimizer = make_optimizer("adam", 0.01, schedule="constant")
    assert isinstance(optimizer.learning_rate, keras.Variable)


@pytest.mark.parametrize("steps", [None, 0])
def test_cosine_needs_the_steps_of_an_epoch(steps):
    with pytest.raises(ValueError, match="needs the steps of one epoch"):
        make_optimizer("adam", 1e-3, schedule="cosine_per_epoch", steps_per_epoch=steps)


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="Unknown learning-rate schedule 'linear'"):
        make_optimizer("adam", 1e-3, schedule="linear", steps_per_epoch=10)


@pytest.mark.parametrize("name", ["adam", "lazy_adam"])
def test_a_second_optimizer_and_a_saved_model_keep_the_schedule(name, tmp_path):
    model = models.build("dr_jl", TINY_SCHEMA, embedding_dim=4, hidden_units=(8,), tower_units=(4,))
    model.compile(optimizer=make_optimizer(name, 1e-3, schedule="cosine_per_epoch", steps_per_epoch=5))
    copy = model.imputation_optimizer  # DR-JL's second optimizer, made from the compiled one's config
    for optimizer in (model.optimizer, copy):
        assert isinstance(optimizer.get_config()["learning_rate"], dict)  # a serialized schedule, not a number
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    config = loaded.optimizer.get_config()["learning_rate"]
    assert config["class_name"] == "CosineDecayRestarts" and config["config"]["first_decay_steps"] == 5


def test_only_a_decaying_schedule_needs_the_epoch_length():
    # The command lines count the training records only for these (an extra read pass otherwise saved).
    assert [s for s in ("constant", "cosine_per_epoch") if needs_steps_per_epoch(s)] == ["cosine_per_epoch"]
