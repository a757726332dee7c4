"""Evaluation metrics of a CVR ranker, under explicit population names.

Published CVR numbers differ in the population they score (docs/methods.md,
section "Evaluation populations"): DDPO and EVI score pCVR on clicked impressions against conversion; ESCM²'s
PaddleRec code and NISE score pCVR on all impressions against click-and-buy.
Both are reported, each under its own name. With the simulator's ground truth
the oracle metrics score pCVR over the entire impression space, the quantity
selection-bias correction is about.

References: Xu et al., WWW 2022, https://doi.org/10.1145/3485447.3512081 (D-AUC, D-NLL);
Zhang et al., WWW 2020, https://doi.org/10.1145/3366423.3380037 (GAUC).
"""

import math

import numpy as np
import numpy.typing as npt

from tfcvr.metrics import calibration
from tfcvr.metrics.ranking import auc as _auc
from tfcvr.metrics.ranking import group_auc
from tfcvr.metrics.ranking import nll as _nll

# name -> what it measures; the order of the printed table.
METRIC_DESCRIPTIONS = {
    "ctr_auc": "AUC of pCTR against click, all impressions",
    "ctr_nll": "log loss of pCTR against click, all impressions",
    "cvr_auc": "AUC of pCVR against conversion, clicked impressions",
    "cvr_nll": "log loss of pCVR against conversion, clicked impressions",
    "cvr_auc_all_ctcvr_label": "AUC of pCVR against click-and-conversion, all impressions (ESCM²/NISE code)",
    "ctcvr_auc": "AUC of pCTCVR against click-and-conversion, all impressions",
    "ctcvr_nll": "log loss of pCTCVR against click-and-conversion, all impressions",
    "joint_nll": "log loss of the observed outcome (no click / click only / click and conversion) per impression: "
    "ctr_nll + CTR·cvr_nll",
    "d_cvr_auc": "D-AUC: AUC of pCVR on clicked impressions, each weighted 1/pCTR (Xu et al., WWW 2022, Eq. 14)",
    "d_cvr_nll": "D-NLL: log loss of pCVR on clicked impressions, each weighted 1/pCTR (Xu et al., WWW 2022, Eq. 16)",
    "ctr_gauc": "GAUC of pCTR against click, impression-weighted over groups (Zhang et al., WWW 2020, Eq. 12)",
    "cvr_gauc": "GAUC of pCVR against conversion over clicked impressions",
    "ctcvr_gauc": "GAUC of pCTCVR against click-and-conversion, all impressions",
    "ctr_pcoc": "Σ pCTR / clicks, all impressions (1 = calibrated)",
    "cvr_pcoc": "Σ pCVR / conversions, clicked impressions",
    "ctcvr_pcoc": "Σ pCTCVR / conversions, all impressions",
    "ctr_mean_bias": "mean pCTR - CTR, all impressions",
    "cvr_mean_bias": "mean pCVR - CVR, clicked impressions",
    "ctcvr_mean_bias": "mean pCTCVR - CTCVR, all impressions",
    "oracle_cvr_auc": "AUC of pCVR against potential_conversion, all impressions (ground truth)",
    "oracle_cvr_nll": "log loss of pCVR against potential_conversion, all impressions (ground truth)",
    "cvr_bias_all": "mean pCVR - mean true_cvr, all impressions (ground truth)",
    "cvr_bias_clicked": "mean pCVR - mean true_cvr, clicked impressions (ground truth)",
    "cvr_bias_unclicked": "mean pCVR - mean true_cvr, unclicked impressions (ground truth)",
    "oracle_cvr_pcoc": "Σ pCVR / Σ true_cvr, all impressions (ground truth)",
    "oracle_ctr_pcoc": "Σ pCTR / Σ true_ctr, all impressions (ground truth: ctr_pcoc without the clicks' draw)",
    "oracle_ctcvr_pcoc": "Σ pCTCVR / Σ true_ctr·true_cvr, all impressions (ground truth)",
    "propensity_auc": "AUC of the click propensity against click (IPW/DR methods)",
    "propensity_nll": "log loss of the click propensity against click",
    "propensity_calibration": "mean click propensity / observed CTR (1 = calibrated)",
    "impressions": "impressions evaluated",
    "clicks": "clicked impressions",
    "conversions": "converted impressions",
    "gauc_groups": "groups with both classes, scored by ctcvr_gauc",
    "gauc_groups_skipped": "groups with one class only, skipped by ctcvr_gauc",
}


def compute_metrics(predictions: dict, labels: dict, reference_ctr: npt.ArrayLike | None = None) -> dict:
    """Metrics from arrays: predictions `ctr`, `cvr`, `ctcvr`; labels `click`, `conversion`.

    Args:
      predictions: {"ctr", "cvr", "ctcvr"[, "propensity"]} arrays.
      labels: {"click", "conversion"} arrays; with `group` (raw group ids of
        the schema's group_key) the GAUC metrics are added; with `true_cvr`
        and `potential_conversion` (the simulator's ground truth) the oracle
        metrics, with `true_ctr` too the oracle calibration of pCTR and pCTCVR.
      reference_ctr: the pCTR that weights D-AUC/D-NLL. UKD's paper (Xu et al.,
        WWW 2022, §4.1.3) takes it from one independently trained CTR model, so that every method is weighted
        alike; default: the model's own pCTR.

    An AUC whose population has one class only is NaN; so is a PCOC without
    positive labels.
    """
    click = np.asarray(labels["click"]).astype(bool)
    conversion = np.asarray(labels["conversion"]).astype(np.int64)
    click_and_conversion = conversion * click
    ctr, cvr, ctcvr = (np.asarray(predictions[k], np.float64) for k in ("ctr", "cvr", "ctcvr"))
    inverse_ctr = 1.0 / np.asarray(ctr if reference_ctr is None else reference_ctr, np.float64)[click]
    ctr_nll, cvr_nll = _nll(click, ctr), _nll(conversion[click], cvr[click])
    results = {
        "ctr_auc": _auc(click, ctr),
        "ctr_nll": ctr_nll,
        "cvr_auc": _auc(conversion[click], cvr[click]),
        "cvr_nll": cvr_nll,
        "cvr_auc_all_ctcvr_label": _auc(click_and_conversion, cvr),
        "ctcvr_auc": _auc(click_and_conversion, ctcvr),
        "ctcvr_nll": _nll(click_and_conversion, ctcvr),
        # -log P(observed outcome) = -log pCTR·(pCVR or 1 - pCVR) on a click, -log(1 - pCTR) otherwise: unlike
        # ctcvr_nll it scores pCVR on the clicked rows itself, not only through the product pCTR·pCVR.
        "joint_nll": ctr_nll + (click.mean() * cvr_nll if click.any() else 0.0),
        "d_cvr_auc": _auc(conversion[click], cvr[click], sample_weight=inverse_ctr),
        "d_cvr_nll": _nll(conversion[click], cvr[click], sample_weight=inverse_ctr),
        "ctr_pcoc": calibration.pcoc(ctr, click),
        "cvr_pcoc": calibration.pcoc(cvr[click], conversion[click]),
        "ctcvr_pcoc": calibration.pcoc(ctcvr, click_and_conversion),
        "ctr_mean_bias": _mean_difference(ctr, click),
        "cvr_mean_bias": _mean_difference(cvr[click], conversion[click]),
        "ctcvr_mean_bias": _mean_difference(ctcvr, click_and_conversion),
    }
    if "group" in labels:
        groups = np.asarray(labels["group"])
        results["ctr_gauc"] = group_auc(click, ctr, groups)["gauc"]
        results["cvr_gauc"] = group_auc(conversion[click], cvr[click], groups[click])["gauc"]
        ctcvr_groups = group_auc(click_and_conversion, ctcvr, groups)
        results["ctcvr_gauc"] = ctcvr_groups["gauc"]
        results["gauc_groups"] = ctcvr_groups["groups_scored"]
        results["gauc_groups_skipped"] = ctcvr_groups["groups_skipped"]
    if "true_cvr" in labels and "potential_conversion" in labels:
        true_cvr = np.asarray(labels["true_cvr"], np.float64)
        results["oracle_cvr_auc"] = _auc(np.asarray(labels["potential_conversion"]), cvr)
        results["oracle_cvr_nll"] = _nll(np.asarray(labels["potential_conversion"]), cvr)
        results["cvr_bias_all"] = _mean_difference(cvr, true_cvr)
        results["cvr_bias_clicked"] = _mean_difference(cvr[click], true_cvr[click])
        results["cvr_bias_unclicked"] = _mean_difference(cvr[~click], true_cvr[~click])
        results["oracle_cvr_pcoc"] = calibration.pcoc(cvr, true_cvr)
    if "true_ctr" in labels and "true_cvr" in labels:
        # The expected label counts of these rows: calibration without the Bernoulli draw of the labels, whose
        # noise (±2/√positives) dominates Σ prediction / Σ label on a small test split.
        true_ctr = np.asarray(labels["true_ctr"], np.float64)
        results["oracle_ctr_pcoc"] = calibration.pcoc(ctr, true_ctr)
        results["oracle_ctcvr_pcoc"] = calibration.pcoc(ctcvr, true_ctr * np.asarray(labels["true_cvr"], np.float64))
    if "propensity" in predictions:
        propensity = np.asarray(predictions["propensity"], np.float64)
        results["propensity_auc"] = _auc(click, propensity)
        results["propensity_nll"] = _nll(click, propensity)
        results["propensity_calibration"] = calibration.pcoc(propensity, click)  # mean ô / CTR
    results.update(impressions=int(click.size), clicks=int(click.sum()), conversions=int(click_and_conversion.sum()))
    return results


def format_table(metrics: dict, title: str = "") -> str:
    """A two-column text table of `metrics` in `METRIC_DESCRIPTIONS` order."""
    names = [n for n in METRIC_DESCRIPTIONS if n in metrics] + sorted(set(metrics) - set(METRIC_DESCRIPTIONS))
    width = max(len(n) for n in names)
    lines = [title] if title else []
    lines.append(f"{'metric'.ljust(width)}  value")
    lines.append(f"{'-' * width}  {'-' * 9}")
    for name in names:
        value = metrics[name]
        shown = f"{value:d}" if isinstance(value, int) else ("nan" if math.isnan(value) else f"{value:.5f}")
        lines.append(f"{name.ljust(width)}  {shown}")
    return "\n".join(lines)


def _mean_difference(predicted, truth) -> float:
    if predicted.size == 0:
        return float("nan")
    return float(np.mean(predicted) - np.mean(truth))
