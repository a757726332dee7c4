"""Paired significance over runs: run r of every method shares a seed, so differences are paired."""

import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats


def paired_p_value(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Two-sided paired t-test over runs (scipy.stats.ttest_rel); NaN with fewer than 2 runs or constant differences."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mask = ~(np.isnan(a) | np.isnan(b))
    differences = a[mask] - b[mask]
    if differences.size < 2 or np.allclose(differences, differences[0], rtol=0.0, atol=1e-12):
        return float("nan")  # the t statistic is undefined without variation in the differences
    return float(scipy_stats.ttest_rel(a[mask], b[mask]).pvalue)


def paired_difference(
    candidate: npt.ArrayLike, baseline: npt.ArrayLike, groups: npt.ArrayLike | None = None, confidence: float = 0.95
) -> dict:
    """Mean of `candidate - baseline` per-example values (e.g. log losses on the same records), with its test.

    Records of one group (a session or user: `groups`, one key per record)
    are not independent, so the standard error is the cluster-robust one
    over groups (Cameron & Miller, "A Practitioner's Guide to
    Cluster-Robust Inference", J. Human Resources 2015): with
    D_g the sum of the differences of group g, n_g its size, N the records
    and G the groups, se^2 = G / (G - 1) * sum_g (D_g - n_g * mean)^2 / N^2,
    with G - 1 degrees of freedom. Without groups every record is its own
    group and this is the paired t-test.

    Returns {"mean_difference", "baseline_mean", "candidate_mean",
    "standard_error", "ci_low", "ci_high" (two-sided `confidence`),
    "p_greater" (one-sided: the candidate's values are larger, i.e. a
    loss is worse), "p_two_sided", "records", "groups"}.
    """
    candidate, baseline = np.asarray(candidate, np.float64), np.asarray(baseline, np.float64)
    if candidate.shape != baseline.shape or candidate.ndim != 1:
        raise ValueError(f"Paired values need equal 1-D shapes. Received: {candidate.shape} and {baseline.shape}")
    differences = candidate - baseline
    records = differences.size
    if groups is None:
        group_ids = np.arange(records)
    else:
        _, group_ids = np.unique(np.asarray(groups), return_inverse=True)
    sums = np.bincount(group_ids, weights=differences)
    sizes = np.bincount(group_ids)
    num_groups = int(np.count_nonzero(sizes))
    mean = float(differences.mean()) if records else float("nan")
    result = {
        "mean_difference": mean,
        "baseline_mean": float(baseline.mean()) if records else float("nan"),
        "candidate_mean": float(candidate.mean()) if records else float("nan"),
        "records": int(records),
        "groups": num_groups,
    }
    if num_groups < 2:
        return {
            **result,
            "standard_error": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "p_greater": float("nan"),
            "p_two_sided": float("nan"),
        }
    residuals = sums - sizes * mean
    variance = num_groups / (num_groups - 1) * float(np.sum(residuals**2)) / records**2
    se = variance**0.5
    degrees = num_groups - 1
    half_width = float(scipy_stats.t.ppf(0.5 + confidence / 2, degrees)) * se
    if se == 0:
        p_greater = 0.0 if mean > 0 else 1.0
        p_two = 0.0 if mean != 0 else 1.0
    else:
        t = mean / se
        p_greater = float(scipy_stats.t.sf(t, degrees))
        p_two = float(2 * scipy_stats.t.sf(abs(t), degrees))
    return {
        **result,
        "standard_error": se,
        "ci_low": mean - half_width,
        "ci_high": mean + half_width,
        "p_greater": p_greater,
        "p_two_sided": p_two,
    }
