import math

import pytest
import tensorflow as tf

from tests.conftest import HAND_CTR_LOSS, HAND_LABELS, hand_predictions, small_model, tiny_features, variables_named


def test_objective_matches_eq3_by_hand():
    model = small_model("esmm", ctr_loss_weight=2.0)
    terms = {k: float(v) for k, v in model.objective(HAND_LABELS, hand_predictions()).items()}
    ctcvr = (-math.log(0.3) - math.log(1 - 0.24) - math.log(1 - 0.18) - math.log(1 - 0.05)) / 4
    assert terms["ctcvr_loss"] == pytest.approx(ctcvr, rel=1e-5)
    assert terms["ctr_loss"] == pytest.approx(HAND_CTR_LOSS, rel=1e-5)
    assert terms["loss"] == pytest.approx(ctcvr + 2.0 * HAND_CTR_LOSS, rel=1e-5)


@pytest.mark.parametrize("backbone", ["shared_bottom", "mmoe"])
def test_ctcvr_loss_trains_cvr_on_unclicked_impressions(backbone):
    model = small_model("esmm", backbone=backbone)
    unclicked = {"click": tf.zeros([4], tf.int64), "conversion": tf.zeros([4], tf.int64)}
    with tf.GradientTape(persistent=True) as tape:
        terms = model.objective(unclicked, model(tiny_features(), training=True))
    # Through pCTR * pCVR the entire space reaches both towers (Ma et al., SIGIR 2018; as restated by Xu et al.,
    # WWW 2022, §2.3.1).
    # A head's bias gradient is the sum of dL/dlogit, non-zero whatever ReLU units are dead.
    for part in ("cvr_head/bias", "ctr_head/bias"):
        (gradient,) = tape.gradient(terms["ctcvr_loss"], variables_named(model, part))
        assert float(tf.reduce_sum(tf.abs(gradient))) > 0
    assert all(g is not None for g in tape.gradient(terms["ctcvr_loss"], variables_named(model, "cvr_tower")))
    assert all(g is None for g in tape.gradient(terms["ctr_loss"], variables_named(model, "cvr_")))
