"""AUC, log loss and group AUC over numpy arrays; sklearn does the arithmetic of AUC and log loss, group AUC
ranks every group in one numpy pass (sklearn has no grouped AUC; one call per group is slow with many users).

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
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores)
    groups = np.asarray(groups)
    if labels.size == 0:
        return {"gauc": float("nan"), "groups_scored": 0, "groups_skipped": 0}
    # One pass over all groups (a loop of sklearn calls costs ~1 ms per group, which made per-user GAUC most of an
    # evaluation): sort by group, then score; each group's AUC is the Mann-Whitney U of its positives' ranks,
    # ties at their average rank (so a tie counts 1/2, as in `auc`).
    order = np.lexsort((scores, groups))
    groups, scores, labels = groups[order], scores[order], labels[order]
    new_group = np.r_[True, groups[1:] != groups[:-1]]
    group_index = np.cumsum(new_group) - 1
    group_start = np.flatnonzero(new_group)
    new_tie = new_group | np.r_[True, scores[1:] != scores[:-1]]
    tie_index = np.cumsum(new_tie) - 1
    tie_start = np.flatnonzero(new_tie)
    tie_end = np.r_[tie_start[1:], labels.size]  # exclusive
    # 1-based rank within the group, the mean of the tie block's positions.
    rank = (tie_start + tie_end + 1) / 2.0 - group_start[group_index[tie_start]]
    size = np.bincount(group_index)
    positives = np.bincount(group_index, weights=labels)
    negatives = size - positives
    positive_ranks = np.bincount(group_index, weights=labels * rank[tie_index])
    scored = (positives > 0) & (negatives > 0)
    u = positive_ranks[scored] - positives[scored] * (positives[scored] + 1) / 2
    aucs = u / (positives[scored] * negatives[scored])
    weights = size[scored]
    gauc = float(np.sum(weights * aucs) / np.sum(weights)) if weights.size else float("nan")
    return {"gauc": gauc, "groups_scored": int(scored.sum()), "groups_skipped": int((~scored).sum())}
