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


def _logit(p):
    return math.log(p / (1 - p))


# The starting bias of every head layer, by layer name: the log-odds of the rate of what it learns.
HEAD_LOGITS = {
    "ctr_head": _logit(RATES["ctr"]),
    "cvr_head": _logit(RATES["cvr"]),
    "ctcvr_head": _logit(RATES["ctcvr"]),  # division's direct pCTCVR
    "propensity_head": _logit(RATES["ctr"]),
    "teacher_cvr_head": _logit(RATES["cvr"]),
    "cvr_first_head": _logit(RATES["cvr"]),  # UKD's two CVR predictors
    "cvr_second_head": _logit(RATES["cvr"]),
    "conversion_propensity_head": _logit(RATES["cvr"]),  # DDPO's r^c, fitted on clicks
    "imputation_head": _logit(RATES["cvr"]),  # DR-JL's imputed conversion
    "uncvr_head": -_logit(RATES["cvr"]),  # 1 − CVR
    "counterfactual_cvr_head": -_logit(RATES["cvr"]),  # 1 − CVR
    "click_discriminator_head": 0.0,  # L_d's 1:1 sample of clicks and non-clicks: 1/2
}
# Per method, where it differs (each method's build_outputs says why).
METHOD_HEAD_LOGITS = {
    "naive_imputation": {"cvr_head": _logit(RATES["ctcvr"])},  # learns click·conversion
    "oversampling": {"cvr_head": _logit(RATES["cvr"]) + math.log(5)},  # r̂_k: k times the odds
    "multi_dr": {"imputation_head": 0.0},  # a softplus imputed error, not a rate
    "escm2_dr": {"imputation_head": 0.0},
    "evi": {"cvr_head": 0.0, "teacher_cvr_head": 0.0},  # students of pseudo-labels: 1/2 (measured)
    "ddpo": {"cvr_head": 0.0},
    "mmoe_ddpo": {"cvr_head": 0.0},
}


def _heads(model):
    return [
        layer
        for layer in [*model.layers, *getattr(getattr(model, "teacher", None), "layers", [])]
        if layer.name.endswith("_head")
    ]


def _with_zero_head_kernels(model):
    """The model with every head's kernel at 0: each head outputs its bias alone."""
    for layer in _heads(model):
        layer.kernel.assign(tf.zeros_like(layer.kernel))
    return model


@pytest.mark.parametrize("name", models.names())
def test_every_head_starts_at_the_rate_of_what_it_learns(name):
    keras.utils.set_random_seed(0)
    model = _with_zero_head_kernels(models.build(name, TINY_SCHEMA, label_rates=RATES, **SMALL))
    expected = {**HEAD_LOGITS, **METHOD_HEAD_LOGITS.get(name, {})}
    heads = _heads(model)
    assert heads and all(layer.name in expected for layer in heads), [layer.name for layer in heads]
    for layer in heads:  # a new head must be listed above, with the rate of what it learns
        np.testing.assert_allclose(layer.bias.numpy(), [expected[layer.name]], rtol=1e-5, err_msg=f"{name}")
    # What is served, from the biases alone: pCTR at the click rate, pCTCVR = pCTR · pCVR.
    outputs = model(tiny_features(), training=False)
    served_cvr = {"evi": 0.5, "ddpo": 0.5, "mmoe_ddpo": 0.5, "naive_imputation": RATES["ctcvr"]}.get(name, RATES["cvr"])
    np.testing.assert_allclose(outputs["ctr"].numpy(), RATES["ctr"], rtol=1e-5)
    np.testing.assert_allclose(outputs["cvr"].numpy(), served_cvr, rtol=1e-5)
    np.testing.assert_allclose(outputs["ctcvr"].numpy(), RATES["ctr"] * served_cvr, rtol=1e-5)


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
