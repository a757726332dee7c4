import math

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
)

UNCVR = [0.3, 0.6, 0.2, 0.4]
CLICKED, UNCLICKED = (0, 1), (2, 3)


def bce(target, p):
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def click_space(errors):
    return sum(errors[i] / HAND_CTR[i] for i in CLICKED) / len(CLICKED)  # (1/|O|) Σ_O e/ô


def unclick_space(errors):
    return sum(errors[i] / (1 - HAND_CTR[i]) for i in UNCLICKED) / len(UNCLICKED)  # (1/|N|) Σ_N e/(1-ô)


def _predictions():
    return hand_predictions(uncvr=UNCVR, ctuncvr=[c * u for c, u in zip(HAND_CTR, UNCVR)])


def test_every_term_by_hand():
    # Eq. 4-11 as printed: 1/|O| and 1/|N| ("click_count"), no CTR loss.
    terms = {
        k: float(v)
        for k, v in small_model("chorus", ctr_loss_weight=0.0, normalization="click_count")
        .objective(HAND_LABELS, _predictions())
        .items()
    }
    ctcvr = (-math.log(0.3) - math.log(1 - 0.24) - math.log(1 - 0.18) - math.log(1 - 0.05)) / 4
    ctuncvr = (bce(0, 0.15) + bce(1, 0.48) + bce(0, 0.04) + bce(0, 0.04)) / 4  # Eq. 7
    uncvr = click_space([bce(0, UNCVR[0]), bce(1, UNCVR[1]), 0, 0])  # Eq. 9
    cvr_to_uncvr = [bce(1 - u, r) for u, r in zip(UNCVR, HAND_CVR)]
    uncvr_to_cvr = [bce(1 - r, u) for u, r in zip(UNCVR, HAND_CVR)]
    align = sum(click_space(e) + unclick_space(e) for e in (cvr_to_uncvr, uncvr_to_cvr))  # Eq. 10
    expected = {
        "ctcvr_loss": ctcvr,
        "cvr_loss": click_space(HAND_CVR_ERRORS),
        "ctuncvr_loss": ctuncvr,
        "uncvr_loss": uncvr,
        "align_loss": align,
    }
    for name, value in expected.items():
        assert terms[name] == pytest.approx(value, rel=1e-5), name
    assert terms["loss"] == pytest.approx(sum(expected.values()), rel=1e-5)  # Eq. 11, no CTR loss
    # The default divides every weighted sum by |D| = 4 (|O| = |N| = 2 here: half of each printed term)
    # and adds the CTR log loss on every impression.
    default = {k: float(v) for k, v in small_model("chorus").objective(HAND_LABELS, _predictions()).items()}
    halved = ("cvr_loss", "uncvr_loss", "align_loss")
    for name in halved:
        assert default[name] == pytest.approx(expected[name] / 2, rel=1e-5), name
    reweighted = sum(expected[n] / 2 if n in halved else expected[n] for n in expected)
    assert default["loss"] == pytest.approx(reweighted + HAND_CTR_LOSS, rel=1e-5)


def test_ablations_drop_their_terms():
    without_ndm = small_model("chorus", use_ndm=False).objective(HAND_LABELS, _predictions())
    without_sam = small_model("chorus", use_sam=False).objective(HAND_LABELS, _predictions())
    assert "uncvr_loss" not in without_ndm and "ctuncvr_loss" not in without_ndm and "align_loss" in without_ndm
    assert "align_loss" not in without_sam and "uncvr_loss" in without_sam
    plain = small_model("chorus", click_space_ipw=False).objective(HAND_LABELS, _predictions())
    assert float(plain["cvr_loss"]) == pytest.approx((HAND_CVR_ERRORS[0] + HAND_CVR_ERRORS[1]) / 2, rel=1e-5)


def test_alignment_stop_gradients():
    """Each tower is pulled towards 1 − (the other, frozen): d align/d r̂ has only the cvr terms."""
    model = small_model("chorus", normalization="click_count")
    cvr, uncvr = tf.Variable(HAND_CVR), tf.Variable(UNCVR)
    with tf.GradientTape() as tape:
        predictions = {**_predictions(), "cvr": cvr, "uncvr": uncvr}
        align = model.objective(HAND_LABELS, predictions)["align_loss"]
    cvr_gradient, uncvr_gradient = tape.gradient(align, [cvr, uncvr])
    weights = np.array([1 / (2 * 0.5), 1 / (2 * 0.8), 1 / (2 * 0.8), 1 / (2 * 0.9)])
    r, u = np.array(HAND_CVR), np.array(UNCVR)
    # dδ(t, p)/dp = (p − t) / (p (1 − p)), with t held fixed by the stop-gradient.
    np.testing.assert_allclose(cvr_gradient.numpy(), weights * (r - (1 - u)) / (r * (1 - r)), rtol=1e-4)
    np.testing.assert_allclose(uncvr_gradient.numpy(), weights * (u - (1 - r)) / (u * (1 - u)), rtol=1e-4)
