import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import (
    HAND_CTR_LOSS,
    HAND_CVR_ERRORS,
    HAND_LABELS,
    hand_predictions,
    small_model,
    tiny_features,
    variables_named,
)
from tfcvr import models


def test_objective_matches_eq2_by_hand():
    model = small_model("naive", ctr_loss_weight=0.5)
    terms = {k: float(v) for k, v in model.objective(HAND_LABELS, hand_predictions()).items()}
    cvr = (HAND_CVR_ERRORS[0] + HAND_CVR_ERRORS[1]) / 2  # clicked impressions only
    assert terms["cvr_loss"] == pytest.approx(cvr, rel=1e-5)
    assert terms["ctr_loss"] == pytest.approx(HAND_CTR_LOSS, rel=1e-5)
    assert terms["loss"] == pytest.approx(cvr + 0.5 * HAND_CTR_LOSS, rel=1e-5)


def test_joint_is_the_same_method():
    assert models.get("joint") is models.get("naive")


@pytest.mark.parametrize("backbone", ["shared_bottom", "mmoe"])
def test_cvr_loss_reaches_only_the_cvr_tower_and_shared_layers(backbone):
    model = small_model("naive", backbone=backbone)
    with tf.GradientTape(persistent=True) as tape:
        terms = model.objective(HAND_LABELS, model(tiny_features(), training=True))
    cvr_grads = dict(
        zip([v.path for v in model.trainable_variables], tape.gradient(terms["cvr_loss"], model.trainable_variables))
    )
    assert all(cvr_grads[v.path] is None for v in variables_named(model, "ctr_"))
    assert all(cvr_grads[v.path] is not None for v in variables_named(model, "cvr_head"))
    assert any(cvr_grads[v.path] is not None for v in variables_named(model, "embedding"))
    ctr_grads = tape.gradient(terms["ctr_loss"], variables_named(model, "cvr_"))
    assert all(g is None for g in ctr_grads)


def test_unclicked_impressions_give_the_cvr_tower_no_gradient():
    model = small_model("naive")
    unclicked = {"click": tf.zeros([4], tf.int64), "conversion": tf.zeros([4], tf.int64)}
    with tf.GradientTape() as tape:
        terms = model.objective(unclicked, model(tiny_features(), training=True))
    for gradient in tape.gradient(terms["cvr_loss"], variables_named(model, "cvr_head")):
        np.testing.assert_array_equal(gradient.numpy(), 0.0)
