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
