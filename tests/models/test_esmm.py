import math

import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, tiny_features, variables_named
from tfcvr import models


def test_objective_matches_eq3_by_hand():
    model = models.build("esmm", TINY_SCHEMA, ctr_loss_weight=2.0, hidden_units=(4,), tower_units=(2,))
    labels = {"click": tf.constant([1, 1, 0, 0], tf.int64), "conversion": tf.constant([1, 0, 0, 0], tf.int64)}
    ctr, cvr = [0.5, 0.8, 0.2, 0.1], [0.6, 0.3, 0.9, 0.5]
    predictions = {"ctr": tf.constant(ctr), "cvr": tf.constant(cvr),
                   "ctcvr": tf.constant([a * b for a, b in zip(ctr, cvr)])}
    terms = {k: float(v) for k, v in model.objective(labels, predictions).items()}
    ctcvr = (-math.log(0.3) - math.log(1 - 0.24) - math.log(1 - 0.18) - math.log(1 - 0.05)) / 4
    ctr_loss = (-math.log(0.5) - math.log(0.8) - math.log(0.8) - math.log(0.9)) / 4
    assert terms["ctcvr_loss"] == pytest.approx(ctcvr, rel=1e-5)
    assert terms["ctr_loss"] == pytest.approx(ctr_loss, rel=1e-5)
    assert terms["loss"] == pytest.approx(ctcvr + 2.0 * ctr_loss, rel=1e-5)


@pytest.mark.parametrize("backbone", ["shared_bottom", "mmoe"])
def test_ctcvr_loss_trains_cvr_on_unclicked_impressions(backbone):
    model = models.build("esmm", TINY_SCHEMA, backbone=backbone, hidden_units=(4,), tower_units=(2,))
    unclicked = {"click": tf.zeros([4], tf.int64), "conversion": tf.zeros([4], tf.int64)}
    with tf.GradientTape(persistent=True) as tape:
        terms = model.objective(unclicked, model(tiny_features(), training=True))
    # Through pCTR * pCVR the entire space reaches both towers (ukd.txt §2.3.1).
    # A head's bias gradient is the sum of dL/dlogit, non-zero whatever ReLU units are dead.
    for part in ("cvr_head/bias", "ctr_head/bias"):
        gradient, = tape.gradient(terms["ctcvr_loss"], variables_named(model, part))
        assert float(tf.reduce_sum(tf.abs(gradient))) > 0
    assert all(g is not None for g in tape.gradient(terms["ctcvr_loss"], variables_named(model, "cvr_tower")))
    assert all(g is None for g in tape.gradient(terms["ctr_loss"], variables_named(model, "cvr_")))
