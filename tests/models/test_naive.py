import math

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, tiny_features, variables_named
from tfcvr import models

LABELS = {"click": tf.constant([1, 1, 0, 0], tf.int64), "conversion": tf.constant([1, 0, 0, 0], tf.int64)}
PREDICTIONS = {"ctr": tf.constant([0.5, 0.8, 0.2, 0.1]), "cvr": tf.constant([0.6, 0.3, 0.9, 0.5])}


def test_objective_matches_eq2_by_hand():
    model = models.build("naive", TINY_SCHEMA, ctr_loss_weight=0.5, hidden_units=(4,), tower_units=(2,))
    terms = {k: float(v) for k, v in model.objective(LABELS, PREDICTIONS).items()}
    cvr = (-math.log(0.6) - math.log(0.7)) / 2  # clicked impressions only
    ctr = (-math.log(0.5) - math.log(0.8) - math.log(0.8) - math.log(0.9)) / 4
    assert terms["cvr_loss"] == pytest.approx(cvr, rel=1e-5)
    assert terms["ctr_loss"] == pytest.approx(ctr, rel=1e-5)
    assert terms["loss"] == pytest.approx(cvr + 0.5 * ctr, rel=1e-5)


@pytest.mark.parametrize("backbone", ["shared_bottom", "mmoe"])
def test_cvr_loss_reaches_only_the_cvr_tower_and_shared_layers(backbone):
    model = models.build("naive", TINY_SCHEMA, backbone=backbone, hidden_units=(4,), tower_units=(2,))
    with tf.GradientTape(persistent=True) as tape:
        terms = model.objective(LABELS, model(tiny_features(), training=True))
    cvr_grads = dict(zip([v.path for v in model.trainable_variables],
                         tape.gradient(terms["cvr_loss"], model.trainable_variables)))
    assert all(cvr_grads[v.path] is None for v in variables_named(model, "ctr_"))
    assert all(cvr_grads[v.path] is not None for v in variables_named(model, "cvr_head"))
    assert any(cvr_grads[v.path] is not None for v in variables_named(model, "embedding"))
    ctr_grads = tape.gradient(terms["ctr_loss"], variables_named(model, "cvr_"))
    assert all(g is None for g in ctr_grads)


def test_unclicked_impressions_give_the_cvr_tower_no_gradient():
    model = models.build("naive", TINY_SCHEMA, hidden_units=(4,), tower_units=(2,))
    unclicked = {"click": tf.zeros([4], tf.int64), "conversion": tf.zeros([4], tf.int64)}
    with tf.GradientTape() as tape:
        terms = model.objective(unclicked, model(tiny_features(), training=True))
    for gradient in tape.gradient(terms["cvr_loss"], variables_named(model, "cvr_head")):
        np.testing.assert_array_equal(gradient.numpy(), 0.0)
