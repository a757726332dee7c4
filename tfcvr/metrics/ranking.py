"""AUC, log loss and group AUC over numpy arrays; sklearn does the arithmetic.

An AUC needs both classes: a population with one class gives NaN rather than
an exception, so a small evaluation split never crashes a leaderboard.
"""

import numpy as np
import numpy.typing as npt
from sklearn import metrics as sk_metrics


def auc(labels: npt.ArrayLike, scores: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None) -> float:
    """ROC AUC; weighted as Σ_{i∈D+, j∈D−} w_i w_j I(s_i > s_j) / (Σ_{D+} w_i · Σ_{D−} w_j) (ties count 1/2)."""
    labels = np.asarray(labels)
    if labels.size == 0 or labels.min() == labels.max():
        return float("nan")
    return float(sk_metrics.roc_auc_score(labels, scores, sample_weight=sample_weight))


def nll(labels: npt.ArrayLike, probabilities: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None) -> float:
    """Mean binary log loss, weighted as Σ w_i ℓ_i / Σ w_i."""
    if np.asarray(labels).size == 0:
        return float("nan")
    return float(sk_metrics.log_loss(labels, probabilities, sample_weight=sample_weight, labels=[0, 1]))


def group_auc(labels: npt.ArrayLike, scores: npt.ArrayLike, groups: npt.ArrayLike) -> dict:
    """GAUC = Σ_i w_i AUC_i / Σ_i w_i over groups i, w_i = the group's impressions (Zhang et al., WWW 2020,
    https://doi.org/10.1145/3366423.3380037, Eq. 12).

    A group whose labels are all one class has no AUC: it is skipped and
    counted. Returns {"gauc", "groups_scored", "groups_skipped"}.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    groups = np.asarray(groups)
    if labels.size == 0:
        return {"gauc": float("nan"), "groups_scored": 0, "groups_skipped": 0}
    order = np.argsort(groups, kind="stable")
    boundaries = np.flatnonzero(groups[order][1:] != groups[order][:-1]) + 1
    weighted, total_weight, scored, skipped = 0.0, 0, 0, 0
    for members in np.split(order, boundaries):
        value = auc(labels[members], scores[members])
        if np.isnan(value):
            skipped += 1
            continue
        weighted += members.size * value
        total_weight += members.size
        scored += 1
    gauc = weighted / total_weight if total_weight else float("nan")
    return {"gauc": float(gauc), "groups_scored": scored, "groups_skipped": skipped}
