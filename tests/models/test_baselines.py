"""Heuristic DR, naive imputation, division and oversampling against hand computation."""

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
    tiny_features,
)


def test_heuristic_dr_imputes_eta():
    eta = 0.01
    terms = small_model("heuristic_dr", smoothing_rate=eta).objective(HAND_LABELS, hand_predictions())
    imputed = [-(eta * math.log(p) + (1 - eta) * math.log(1 - p)) for p in HAND_CVR]
    dr = sum(imputed) / 4 + sum((HAND_CVR_ERRORS[i] - imputed[i]) / HAND_CTR[i] for i in (0, 1)) / 4
    assert float(terms["cvr_loss"]) == pytest.approx(dr, rel=1e-5)
    with pytest.raises(ValueError, match="`smoothing_rate`"):
        small_model("heuristic_dr", smoothing_rate=1.5)


def test_naive_imputation_treats_unclicked_as_negatives(caplog):
    terms = small_model("naive_imputation").objective(HAND_LABELS, hand_predictions())
    assert "naive_imputation is a baseline: its pCVR estimates P(click and conversion)" in caplog.text
    assert float(terms["cvr_loss"]) == pytest.approx(sum(HAND_CVR_ERRORS) / 4, rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(sum(HAND_CVR_ERRORS) / 4 + HAND_CTR_LOSS, rel=1e-5)


def test_oversampling_counts_converted_clicks_k_times():
    predictions = hand_predictions(oversampled_cvr=HAND_CVR)
    terms = small_model("oversampling", oversampling_rate=5).objective(HAND_LABELS, predictions)
    assert float(terms["cvr_loss"]) == pytest.approx((5 * HAND_CVR_ERRORS[0] + HAND_CVR_ERRORS[1]) / 6, rel=1e-5)


def test_oversampling_serves_the_odds_divided_by_k_unless_told_not_to():
    for correct in (True, False):
        outputs = small_model("oversampling", oversampling_rate=4, correct_prediction=correct)(tiny_features())
        trained, served = outputs["oversampled_cvr"].numpy(), outputs["cvr"].numpy()
        # Odds of the served pCVR = odds of the trained head / k (prior correction).
        odds_ratio = (trained / (1 - trained)) / (served / (1 - served))
        np.testing.assert_allclose(odds_ratio, 4.0 if correct else 1.0, rtol=1e-4)
        np.testing.assert_allclose(outputs["ctcvr"].numpy(), outputs["ctr"].numpy() * served, rtol=1e-5)
    with pytest.raises(ValueError, match="`oversampling_rate`"):
        small_model("oversampling", oversampling_rate=0)


def test_division_learns_ctcvr_and_divides():
    model = small_model("division")
    terms = model.objective(HAND_LABELS, hand_predictions(ctcvr_direct=[0.3, 0.1, 0.1, 0.05]))
    ctcvr = (-math.log(0.3) - math.log(0.9) - math.log(0.9) - math.log(0.95)) / 4
    assert float(terms["ctcvr_loss"]) == pytest.approx(ctcvr, rel=1e-5)
    outputs = model(tiny_features())
    expected = np.clip(outputs["ctcvr_direct"].numpy() / outputs["ctr"].numpy(), 0.0, 1.0)
    np.testing.assert_allclose(outputs["cvr"].numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(outputs["ctcvr"].numpy(), outputs["ctr"].numpy() * expected, rtol=1e-5)
    assert float(tf.reduce_max(outputs["cvr"])) <= 1.0
