"""Task heads start at the training data's base rates (`label_rates`), for every method."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, tiny_features
from tfcvr import models
from tfcvr.data import TFRecordPipeline, label_rates, numeric_statistics, training_statistics
from trainer import model_identity

SMALL = {"embedding_dim": 4, "hidden_units": (8,), "tower_units": (4, 4)}
RATES = {"ctr": 0.04, "cvr": 0.1, "ctcvr": 0.004}
# What a head predicts, so the rate it starts at (heads not listed predict no label rate).
HEAD_RATES = {
    "ctr": RATES["ctr"],
    "cvr": RATES["cvr"],
    "ctcvr": RATES["ctcvr"],
    "propensity": RATES["ctr"],
    "click_discriminator": RATES["ctr"],
    "teacher_cvr": RATES["cvr"],
    "conversion_propensity": RATES["cvr"],
    "imputed_conversion": RATES["cvr"],
}


# Students fitted mostly to pseudo-labels start at 1/2 (measured; each method's build_outputs says why).
AT_ONE_HALF = {"evi": ("cvr", "teacher_cvr"), "ddpo": ("cvr",), "mmoe_ddpo": ("cvr",)}


def _with_zero_head_kernels(model):
    """The model with every head's kernel at 0: each head outputs its bias alone."""
    for layer in [*model.layers, *getattr(getattr(model, "teacher", None), "layers", [])]:
        if layer.name.endswith("_head"):
            layer.kernel.assign(tf.zeros_like(layer.kernel))
    return model


@pytest.mark.parametrize("name", models.names())
def test_every_head_starts_at_its_label_rate(name):
    keras.utils.set_random_seed(0)
    model = _with_zero_head_kernels(models.build(name, TINY_SCHEMA, label_rates=RATES, **SMALL))
    outputs = model(tiny_features(), training=False)
    if hasattr(model, "teacher"):
        outputs = {**model.teacher(tiny_features(), training=False), **outputs}
    checked = {key: rate for key, rate in HEAD_RATES.items() if key in outputs}
    for key in AT_ONE_HALF.get(name, ()):
        checked[key] = 0.5
    if name in AT_ONE_HALF:  # ctcvr = ctr * cvr
        checked["ctcvr"] = checked["ctr"] * checked["cvr"]
    assert {"ctr", "cvr", "ctcvr"} <= set(checked)
    for key, rate in checked.items():
        np.testing.assert_allclose(outputs[key].numpy(), rate, rtol=1e-5, err_msg=f"{name}: {key}")
    if "oversampled_cvr" in outputs:  # trained on k copies of each conversion: starts at k times the odds
        odds = model.oversampling_rate * RATES["cvr"] / (1 - RATES["cvr"])
        np.testing.assert_allclose(outputs["oversampled_cvr"].numpy(), odds / (1 + odds), rtol=1e-5)


def test_without_label_rates_heads_start_at_one_half():
    model = _with_zero_head_kernels(models.build("esmm", TINY_SCHEMA, **SMALL))
    outputs = model(tiny_features(), training=False)
    np.testing.assert_allclose(outputs["cvr"].numpy(), 0.5)
    np.testing.assert_allclose(outputs["ctcvr"].numpy(), 0.25)


def test_label_rates_round_trip_in_the_config_and_are_not_the_model_identity():
    model = models.build("escm2_dr", TINY_SCHEMA, label_rates=RATES, **SMALL)
    config = model.get_config()
    assert config["label_rates"] == RATES
    clone = _with_zero_head_kernels(type(model).from_config(config))
    np.testing.assert_allclose(clone(tiny_features(), training=False)["ctr"].numpy(), RATES["ctr"], rtol=1e-5)
    # A new day's data moves the rates; the checkpoint still fits the graph, so a warm start must accept it.
    other_day = models.build("escm2_dr", TINY_SCHEMA, label_rates={"ctr": 0.05, "cvr": 0.2}, **SMALL)
    assert model_identity.model_identity("escm2_dr", config) == model_identity.model_identity(
        "escm2_dr", other_day.get_config()
    )


@pytest.mark.parametrize(
    "rates, message",
    [
        ({"click": 0.1}, "unknown rate 'click'"),
        ({"ctr": 0.0}, "strictly between 0 and 1"),
        ({"cvr": 1.0}, "strictly between 0 and 1"),
    ],
)
def test_bad_label_rates_are_refused(rates, message):
    with pytest.raises(ValueError, match=message):
        models.build("naive", TINY_SCHEMA, label_rates=rates, **SMALL)


def test_label_rates_are_jeffreys_posterior_means_over_the_batches():
    click = [1, 1, 0, 0, 0, 1, 0, 0]
    conversion = [1, 0, 0, 0, 0, 0, 0, 0]
    dataset = tf.data.Dataset.from_tensor_slices(
        ({"x": tf.zeros(8)}, {"click": tf.constant(click, tf.int64), "conversion": tf.constant(conversion, tf.int64)})
    ).batch(3)
    rates = label_rates(dataset)
    assert rates["ctr"] == pytest.approx(3.5 / 9) and rates["cvr"] == pytest.approx(1.5 / 4)
    assert rates["ctcvr"] == pytest.approx(1.5 / 9)
    # No conversion at all: a finite log-odds, not log(0).
    none = label_rates(dataset.map(lambda f, y: (f, {**y, "conversion": tf.zeros_like(y["conversion"])})))
    assert none["cvr"] == pytest.approx(0.5 / 4) and math.isfinite(math.log(none["cvr"]))
    assert label_rates(dataset, max_batches=1)["ctr"] == pytest.approx(2.5 / 4)
    with pytest.raises(ValueError, match="no records"):
        label_rates(dataset.take(0))


def test_training_statistics_are_the_constructor_arguments_in_one_read(simulated):
    schema = simulated["schema_obj"]
    dataset = TFRecordPipeline(simulated["train"], schema, 256).dataset()
    statistics = training_statistics(dataset, schema, max_batches=4)
    assert statistics == {
        "numeric_statistics": numeric_statistics(dataset, schema, max_batches=4),
        "label_rates": label_rates(dataset, max_batches=4),
    }
    model = models.build("esmm", schema, **statistics, **SMALL)
    assert model.get_config()["label_rates"] == statistics["label_rates"]
