import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import (
    HAND_CTR,
    HAND_CTR_LOSS,
    HAND_CVR,
    HAND_CVR_ERRORS,
    HAND_LABELS,
    hand_predictions,
    small_model,
    tiny_features,
    variables_named,
)

IMPUTED_CONVERSION = [0.3, 0.2, 0.05, 0.1]


def _snapshot(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


def test_objective_by_hand():
    terms = small_model("dr_jl").objective(HAND_LABELS, hand_predictions(imputed_conversion=IMPUTED_CONVERSION))
    imputed = [-(t * math.log(p) + (1 - t) * math.log(1 - p)) for t, p in zip(IMPUTED_CONVERSION, HAND_CVR)]
    dr = sum(imputed) / 4 + sum((HAND_CVR_ERRORS[i] - imputed[i]) / HAND_CTR[i] for i in (0, 1)) / 4
    assert float(terms["cvr_loss"]) == pytest.approx(dr, rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(HAND_CTR_LOSS + dr, rel=1e-5)


def test_alternating_steps_update_disjoint_variables():
    # Wide enough that no initialisation leaves every ReLU dead: with a dead CVR representation,
    # r̂ = r̃ = 0.5 makes e = ê exactly and the imputation step has nothing to learn.
    keras.utils.set_random_seed(0)
    model = small_model("dr_jl", hidden_units=(32,), tower_units=(16,))
    imputation, prediction = model.imputation_variables, model.prediction_variables
    assert {v.path.split("/")[0] for v in imputation} == {"imputation_tower", "imputation_head"}
    assert len(imputation) + len(prediction) == len(model.trainable_variables)
    before_imp, before_pred = _snapshot(imputation), _snapshot(prediction)
    model.imputation_step(tiny_features(), HAND_LABELS)
    assert any(_changed(before_imp, imputation)) and not any(_changed(before_pred, prediction))
    before_imp, before_pred = _snapshot(imputation), _snapshot(prediction)
    model.prediction_step(tiny_features(), HAND_LABELS)
    assert not any(_changed(before_imp, imputation)) and any(_changed(before_pred, prediction))
    assert int(model.imputation_optimizer.iterations) == 1 and int(model.optimizer.iterations) == 1


def test_dr_loss_moves_the_cvr_tower_on_unclicked_impressions():
    """ê = δ(r̃, r̂) depends on r̂, unlike Multi-DR's and IPW's terms."""
    unclicked = {"click": tf.zeros([4], tf.int64), "conversion": tf.zeros([4], tf.int64)}
    for name, moves in (("dr_jl", True), ("multi_ipw", False)):
        keras.utils.set_random_seed(0)  # a live (not all-dead ReLU) CVR representation, as in the test above
        model = small_model(name, hidden_units=(32,), tower_units=(16,))
        with tf.GradientTape() as tape:
            terms = model.objective(unclicked, model(tiny_features(), training=True))
        (gradient,) = tape.gradient(terms["cvr_loss"], variables_named(model, "cvr_head/bias"))
        magnitude = 0.0 if gradient is None else float(tf.reduce_sum(tf.abs(gradient)))
        assert (magnitude > 0) == moves, name
