import math

import keras
import pytest
import tensorflow as tf

from tests.conftest import (
    HAND_CTR,
    HAND_CTR_LOSS,
    HAND_CVR_ERRORS,
    HAND_LABELS,
    hand_predictions,
    small_model,
    tiny_features,
    variables_named,
)

# Eq. 5 by hand: clicked rows 0 and 1, propensity = pCTR = 0.5 and 0.8, |D| = 4.
IPW = (HAND_CVR_ERRORS[0] / HAND_CTR[0] + HAND_CVR_ERRORS[1] / HAND_CTR[1]) / 4
CTCVR = (-math.log(0.3) - math.log(1 - 0.24) - math.log(1 - 0.18) - math.log(1 - 0.05)) / 4


def test_multi_ipw_objective_by_hand():
    terms = small_model("multi_ipw").objective(HAND_LABELS, hand_predictions())
    assert float(terms["cvr_loss"]) == pytest.approx(IPW, rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(HAND_CTR_LOSS + IPW, rel=1e-5)


def test_ipw_bound_tau_floors_the_propensity():
    terms = small_model("multi_ipw", propensity_floor=0.6).objective(HAND_LABELS, hand_predictions())
    assert float(terms["cvr_loss"]) == pytest.approx((HAND_CVR_ERRORS[0] / 0.6 + HAND_CVR_ERRORS[1] / 0.8) / 4)


def test_escm2_ipw_adds_the_global_ctcvr_risk_with_half_weights():
    terms = small_model("escm2_ipw").objective(HAND_LABELS, hand_predictions())
    assert float(terms["ctcvr_loss"]) == pytest.approx(CTCVR, rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(HAND_CTR_LOSS + 0.5 * IPW + 0.5 * CTCVR, rel=1e-5)


@pytest.mark.parametrize("detach", [True, False])
def test_cvr_term_reaches_the_ctr_tower_only_without_detaching(detach):
    model = small_model("multi_ipw", detach_propensity=detach)
    with tf.GradientTape() as tape:
        terms = model.objective(HAND_LABELS, model(tiny_features(), training=True))
    gradients = tape.gradient(terms["cvr_loss"], variables_named(model, "ctr_head"))
    assert all((g is None) == detach for g in gradients)


def test_ipw_naive_trains_a_separate_propensity_model():
    keras.utils.set_random_seed(0)  # two all-dead ReLU nets would both output exactly 0.5
    model = small_model("ipw_naive", hidden_units=(32,), tower_units=(16,))
    assert variables_named(model, "propensity_embedding") and variables_named(model, "propensity_head")
    predictions = model(tiny_features(), training=True)
    assert not tf.reduce_all(predictions["propensity"] == predictions["ctr"])
    with tf.GradientTape(persistent=True) as tape:
        terms = model.objective(HAND_LABELS, model(tiny_features(), training=True))
    propensity_variables = variables_named(model, "propensity_")
    assert all(g is None for g in tape.gradient(terms["cvr_loss"], propensity_variables))
    assert all(g is None for g in tape.gradient(terms["ctr_loss"], propensity_variables))
    assert all(
        g is not None for g in tape.gradient(terms["propensity_loss"], variables_named(model, "propensity_head"))
    )
    assert all(g is None for g in tape.gradient(terms["propensity_loss"], variables_named(model, "ctr_")))


def test_invalid_propensity_source():
    with pytest.raises(ValueError, match="`propensity` must be one of"):
        small_model("multi_ipw", propensity="logged")
    with pytest.raises(ValueError, match="`normalization` must be one of"):
        small_model("multi_ipw", normalization="batch")
