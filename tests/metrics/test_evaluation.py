import math

import numpy as np
import pytest

from tfcvr.metrics import compute_metrics, format_table

LABELS = {
    "click": np.array([1, 1, 1, 0, 0, 0]),
    "conversion": np.array([1, 0, 1, 0, 0, 0]),
    "true_cvr": np.array([0.5, 0.2, 0.6, 0.1, 0.3, 0.2]),
    "potential_conversion": np.array([1, 0, 1, 0, 1, 0]),
}
PREDICTIONS = {
    "ctr": np.array([0.9, 0.6, 0.7, 0.2, 0.8, 0.1]),
    "cvr": np.array([0.6, 0.7, 0.4, 0.3, 0.5, 0.1]),
}
PREDICTIONS["ctcvr"] = PREDICTIONS["ctr"] * PREDICTIONS["cvr"]


def test_metrics_by_hand():
    m = compute_metrics(PREDICTIONS, LABELS)
    # ctr: positives {.9,.6,.7} vs negatives {.2,.8,.1}: 7 of 9 pairs ordered.
    assert m["ctr_auc"] == pytest.approx(7 / 9)
    # cvr on clicked: positives {.6,.4} vs negative {.7}: 0 of 2 pairs.
    assert m["cvr_auc"] == pytest.approx(0.0)
    assert m["cvr_nll"] == pytest.approx(-(math.log(0.6) + math.log(0.3) + math.log(0.4)) / 3)
    # cvr against click-and-conversion on all: positives {.6,.4} vs {.7,.3,.5,.1}: 5 of 8.
    assert m["cvr_auc_all_ctcvr_label"] == pytest.approx(5 / 8)
    # oracle: positives {.6,.4,.5} vs {.7,.3,.1}: 6 of 9.
    assert m["oracle_cvr_auc"] == pytest.approx(6 / 9)
    assert m["cvr_bias_clicked"] == pytest.approx((0.6 + 0.7 + 0.4) / 3 - (0.5 + 0.2 + 0.6) / 3)
    assert m["cvr_bias_unclicked"] == pytest.approx((0.3 + 0.5 + 0.1) / 3 - (0.1 + 0.3 + 0.2) / 3)
    assert m["cvr_bias_all"] == pytest.approx(np.mean(PREDICTIONS["cvr"]) - np.mean(LABELS["true_cvr"]))
    assert (m["impressions"], m["clicks"], m["conversions"]) == (6, 3, 2)
    # joint: -log of each impression's observed outcome, averaged: clicked rows pCTR·pCVR or pCTR·(1 - pCVR),
    # unclicked rows 1 - pCTR.
    outcomes = [0.9 * 0.6, 0.6 * 0.3, 0.7 * 0.4, 0.8, 0.2, 0.9]
    assert m["joint_nll"] == pytest.approx(-sum(math.log(p) for p in outcomes) / 6)
    assert m["joint_nll"] == pytest.approx(m["ctr_nll"] + 0.5 * m["cvr_nll"])


def test_joint_log_loss_without_clicks_is_the_ctr_log_loss():
    labels = {"click": np.array([0, 0]), "conversion": np.array([0, 0])}
    m = compute_metrics(
        {"ctr": np.array([0.2, 0.4]), "cvr": np.array([0.5, 0.5]), "ctcvr": np.array([0.1, 0.2])}, labels
    )
    assert m["joint_nll"] == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)


def test_undefined_auc_is_nan_and_ground_truth_optional():
    labels = {"click": np.array([1, 1]), "conversion": np.array([0, 0])}
    m = compute_metrics(
        {"ctr": np.array([0.5, 0.6]), "cvr": np.array([0.1, 0.2]), "ctcvr": np.array([0.05, 0.12])}, labels
    )
    assert math.isnan(m["ctr_auc"]) and math.isnan(m["cvr_auc"])
    assert "oracle_cvr_auc" not in m


def test_table_lists_every_metric():
    table = format_table(compute_metrics(PREDICTIONS, LABELS), title="esmm")
    assert table.splitlines()[0] == "esmm"
    assert "oracle_cvr_auc" in table and "impressions              6" in table


def test_propensity_and_oracle_log_loss():
    predictions = {**PREDICTIONS, "propensity": np.array([0.5, 0.5, 0.5, 0.25, 0.25, 0.25])}
    m = compute_metrics(predictions, LABELS)
    assert m["propensity_auc"] == pytest.approx(1.0)
    assert m["propensity_calibration"] == pytest.approx(0.375 / 0.5)
    assert m["propensity_nll"] == pytest.approx(-(3 * math.log(0.5) + 3 * math.log(0.75)) / 6)
    cvr, potential = PREDICTIONS["cvr"], LABELS["potential_conversion"]
    expected = -np.mean(potential * np.log(cvr) + (1 - potential) * np.log(1 - cvr))
    assert m["oracle_cvr_nll"] == pytest.approx(expected)
    assert "propensity_auc" not in compute_metrics(PREDICTIONS, LABELS)


def test_oracle_calibration_of_ctr_and_ctcvr_against_the_expected_counts():
    true_ctr = np.array([0.8, 0.5, 0.6, 0.1, 0.4, 0.2])
    m = compute_metrics(PREDICTIONS, {**LABELS, "true_ctr": true_ctr})
    # Σ pCTR = 3.3 against Σ true_ctr = 2.6 (the 3 clicks drawn do not enter).
    assert m["oracle_ctr_pcoc"] == pytest.approx(3.3 / 2.6)
    expected_conversions = float(np.sum(true_ctr * LABELS["true_cvr"]))  # .4+.1+.36+.01+.12+.04 = 1.03
    assert m["oracle_ctcvr_pcoc"] == pytest.approx(float(np.sum(PREDICTIONS["ctcvr"])) / expected_conversions)
    assert expected_conversions == pytest.approx(1.03)
    assert "oracle_ctr_pcoc" not in compute_metrics(PREDICTIONS, LABELS)  # needs true_ctr
