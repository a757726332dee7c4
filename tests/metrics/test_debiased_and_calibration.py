"""D-AUC / D-NLL, GAUC, PCOC and calibration buckets against hand computation."""

import math

import numpy as np
import pytest

from tests.conftest import tiny_row, write_rows
from tfcvr.data import TFRecordPipeline
from tfcvr.metrics import calibration, compute_metrics
from tfcvr.metrics.ranking import auc, group_auc, nll

# Clicked A, B (converted), C, D (not); E unclicked. Weights 1/pCTR: A 2, B 4, C 2, D 10.
CLICK = np.array([1, 1, 1, 1, 0])
CONVERSION = np.array([1, 1, 0, 0, 0])
CTR = np.array([0.5, 0.25, 0.5, 0.1, 0.05])
CVR = np.array([0.8, 0.3, 0.5, 0.2, 0.9])


def _metrics(**kwargs):
    predictions = {"ctr": CTR, "cvr": CVR, "ctcvr": CTR * CVR}
    return compute_metrics(predictions, {"click": CLICK, "conversion": CONVERSION}, **kwargs)


def test_debiased_auc_and_nll_weight_clicks_by_inverse_ctr():
    m = _metrics()
    # Ordered pairs (positive above negative): A>C (2*2), A>D (2*10), B>D (4*10); B<C. 64 of (2+4)*(2+10).
    assert m["d_cvr_auc"] == pytest.approx(64 / 72)
    assert m["cvr_auc"] == pytest.approx(3 / 4)  # unweighted: 3 of 4 pairs
    losses = {"A": -math.log(0.8), "B": -math.log(0.3), "C": -math.log(0.5), "D": -math.log(0.8)}
    expected = (2 * losses["A"] + 4 * losses["B"] + 2 * losses["C"] + 10 * losses["D"]) / 18
    assert m["d_cvr_nll"] == pytest.approx(expected)
    # A reference CTR model weights every method alike: uniform pCTR gives the plain metrics.
    uniform = _metrics(reference_ctr=np.full(5, 0.3))
    assert uniform["d_cvr_auc"] == pytest.approx(m["cvr_auc"])
    assert uniform["d_cvr_nll"] == pytest.approx(m["cvr_nll"])


def test_weighted_auc_matches_the_pair_formula_with_ties():
    # Positives {.5 (w 1), .2 (w 3)}, negatives {.5 (w 2), .1 (w 1)}: .5=.5 tie counts half.
    value = auc([1, 1, 0, 0], [0.5, 0.2, 0.5, 0.1], sample_weight=[1, 3, 2, 1])
    assert value == pytest.approx((1 * 2 * 0.5 + 1 * 1 + 3 * 1) / (4 * 3))
    assert math.isnan(auc([1, 1], [0.2, 0.3]))
    assert nll([1, 0], [0.8, 0.4], sample_weight=[3, 1]) == pytest.approx((3 * -math.log(0.8) - math.log(0.6)) / 4)


def test_group_auc_weights_by_impressions_and_skips_one_class_groups():
    labels = [1, 0, 1, 0, 0, 0, 0]
    scores = [0.9, 0.1, 0.2, 0.5, 0.1, 0.3, 0.4]
    groups = ["g1", "g1", "g2", "g2", "g2", "g3", "g3"]
    result = group_auc(labels, scores, groups)
    # g1: AUC 1 over 2 impressions; g2: 1 of 2 pairs over 3; g3 has no positive: skipped.
    assert result == {"gauc": pytest.approx((2 * 1.0 + 3 * 0.5) / 5), "groups_scored": 2, "groups_skipped": 1}
    assert math.isnan(group_auc([0, 0], [0.1, 0.2], [1, 2])["gauc"])


def test_group_auc_equals_sklearn_group_by_group():
    # The vectorised ranks against one sklearn AUC per group: ties within a group (scores rounded to 0.1), the
    # same score in different groups, one-class groups, unsorted groups.
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 300, 5000)
    labels = rng.random(5000) < 0.2
    scores = np.round(rng.random(5000), 1)
    weighted, total, scored = 0.0, 0, 0
    for g in np.unique(groups):
        members = groups == g
        if labels[members].min() != labels[members].max():
            weighted += members.sum() * auc(labels[members], scores[members])
            total += members.sum()
            scored += 1
    result = group_auc(labels, scores, groups)
    assert result["gauc"] == pytest.approx(weighted / total, abs=1e-12)
    assert (result["groups_scored"], result["groups_skipped"]) == (scored, len(np.unique(groups)) - scored)


def test_gauc_and_calibration_metrics_in_compute_metrics():
    groups = np.array([7, 7, 8, 8, 8])
    m = _metrics_with_groups(groups)
    # ctcvr = ctr*cvr: group 7 = {A .4 (1), B .075 (1)}: one class; group 8 = {C .25, D .02 (0), E .045 (0)}: one class.
    assert math.isnan(m["ctcvr_gauc"]) and m["gauc_groups"] == 0 and m["gauc_groups_skipped"] == 2
    # ctr: group 7 all clicked (skipped); group 8: clicks {C .5, D .1} vs E .05: AUC 1 over 3 impressions.
    assert m["ctr_gauc"] == pytest.approx(1.0)
    assert m["ctr_pcoc"] == pytest.approx(CTR.sum() / 4)
    assert m["cvr_pcoc"] == pytest.approx((0.8 + 0.3 + 0.5 + 0.2) / 2)
    assert m["ctcvr_pcoc"] == pytest.approx((CTR * CVR).sum() / 2)
    assert m["ctr_mean_bias"] == pytest.approx(CTR.mean() - 0.8)
    assert m["cvr_mean_bias"] == pytest.approx((0.8 + 0.3 + 0.5 + 0.2) / 4 - 0.5)


def _metrics_with_groups(groups):
    predictions = {"ctr": CTR, "cvr": CVR, "ctcvr": CTR * CVR}
    return compute_metrics(predictions, {"click": CLICK, "conversion": CONVERSION, "group": groups})


def test_pcoc():
    assert calibration.pcoc([0.2, 0.3, 0.5], [0, 1, 0]) == pytest.approx(1.0)
    assert calibration.pcoc([0.2, 0.4], [1, 1]) == pytest.approx(0.3)
    assert math.isnan(calibration.pcoc([0.2], [0]))


def test_calibration_buckets_by_pctr_quantile():
    pctr = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    pcvr = np.array([0.9, 0.4, 0.9, 0.2, 0.3, 0.1, 0.9, 0.2])
    click = np.array([0, 1, 0, 1, 1, 1, 0, 1])
    conversion = np.array([0, 1, 0, 0, 1, 0, 0, 0])
    true_cvr = np.array([0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1])
    low, high = calibration.calibration_by_bucket(pctr, pcvr, click, conversion, num_buckets=2, true_cvr=true_cvr)
    assert (low["impressions"], low["clicks"], high["impressions"], high["clicks"]) == (4, 2, 4, 3)
    assert low["pctr_low"] == pytest.approx(0.1) and low["pctr_high"] == pytest.approx(0.45)
    assert high["pctr_high"] == pytest.approx(0.8)
    assert low["mean_pcvr_clicked"] == pytest.approx(0.3) and low["observed_cvr"] == pytest.approx(0.5)
    assert low["pcoc_clicked"] == pytest.approx(0.6)
    assert high["mean_pcvr_clicked"] == pytest.approx(0.2) and high["observed_cvr"] == pytest.approx(1 / 3)
    assert high["pcoc_clicked"] == pytest.approx(0.6)
    assert low["mean_pcvr_all"] == pytest.approx(0.6) and low["true_cvr_all"] == pytest.approx(0.5)
    assert high["pcoc_all"] == pytest.approx((0.3 + 0.1 + 0.9 + 0.2) / 0.4)
    with pytest.raises(ValueError, match="`num_buckets` must be positive"):
        calibration.bucket_edges(pctr, 0)


def test_pipeline_returns_raw_group_ids(tmp_path, tiny_schema):
    rows = [tiny_row(user_id=10**12 + i % 2, click=1, conversion=0) for i in range(4)]
    pipeline = TFRecordPipeline(write_rows(tmp_path / "g.tfrecord", rows), tiny_schema, batch_size=8, group=True)
    ((_, labels),) = list(pipeline.dataset())
    np.testing.assert_array_equal(labels["group"].numpy(), [10**12, 10**12 + 1, 10**12, 10**12 + 1])
