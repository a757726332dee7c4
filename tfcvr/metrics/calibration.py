"""Calibration: PCOC (predicted over observed) overall and per pCTR bucket.

PCOC = Σ predictions / Σ labels; 1 is calibrated, above 1 over-predicts.
ChorusCVR's analysis (Cheng et al., WSDM 2026, https://arxiv.org/abs/2502.08277, Fig. 3) compares pCVR with the actual
CVR across pCTR levels: low-pCTR impressions stand in for the unclicked space,
where debiasing matters, since unclicked conversions are never observed.
Buckets are equal-frequency (quantiles of pCTR over all impressions), so each
holds about the same number of impressions.
"""

import numpy as np
import numpy.typing as npt


def pcoc(predictions: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Σ predictions / Σ labels; NaN when there is no positive label (or nothing to score)."""
    total = float(np.sum(labels))
    return float(np.sum(predictions)) / total if total > 0 else float("nan")


def bucket_edges(scores: npt.ArrayLike, num_buckets: int) -> np.ndarray:
    """num_buckets + 1 quantile edges of `scores` (duplicates removed, so there may be fewer buckets)."""
    if num_buckets < 1:
        raise ValueError(f"`num_buckets` must be positive. Received: {num_buckets}")
    return np.unique(np.quantile(np.asarray(scores, np.float64), np.linspace(0.0, 1.0, num_buckets + 1)))


def calibration_by_bucket(
    pctr: npt.ArrayLike,
    pcvr: npt.ArrayLike,
    click: npt.ArrayLike,
    conversion: npt.ArrayLike,
    num_buckets: int = 10,
    true_cvr: npt.ArrayLike | None = None,
) -> list:
    """Per pCTR bucket: pCVR against the observed CVR on clicks (and the true CVR on all impressions).

    Returns one dict per bucket with `pctr_low`, `pctr_high`, `impressions`,
    `clicks`, `mean_pcvr_clicked`, `observed_cvr` (conversions / clicks),
    `pcoc_clicked` (Σ pCVR / Σ conversion on clicks), `mean_pcvr_all`, and
    with `true_cvr` (simulator ground truth) `true_cvr_all` and
    `pcoc_all` (Σ pCVR / Σ true_cvr over all impressions).
    """
    pctr, pcvr = np.asarray(pctr, np.float64), np.asarray(pcvr, np.float64)
    click = np.asarray(click).astype(bool)
    converted: npt.NDArray[np.float64] = np.asarray(conversion, np.float64) * click  # conversions of clicks only
    edges = bucket_edges(pctr, num_buckets)
    # Bucket k holds edges[k] <= pCTR < edges[k+1]; the last one includes its upper edge.
    index = np.clip(np.searchsorted(edges, pctr, side="right") - 1, 0, max(len(edges) - 2, 0))
    rows = []
    for k in range(max(len(edges) - 1, 1)):
        members = index == k
        clicked = members & click
        row = {
            "bucket": k,
            "pctr_low": float(edges[k]),
            "pctr_high": float(edges[min(k + 1, len(edges) - 1)]),
            "impressions": int(members.sum()),
            "clicks": int(clicked.sum()),
            "mean_pcvr_clicked": float(pcvr[clicked].mean()) if clicked.any() else float("nan"),
            "observed_cvr": float(converted[clicked].mean()) if clicked.any() else float("nan"),
            "pcoc_clicked": pcoc(pcvr[clicked], converted[clicked]),
            "mean_pcvr_all": float(pcvr[members].mean()) if members.any() else float("nan"),
        }
        if true_cvr is not None:
            truth = np.asarray(true_cvr, np.float64)[members]
            row["true_cvr_all"] = float(truth.mean()) if members.any() else float("nan")
            row["pcoc_all"] = pcoc(pcvr[members], truth)
        rows.append(row)
    return rows
