"""paired_difference: the paired t-test without groups, the cluster-robust one with them (by hand)."""

import numpy as np
import pytest
from scipy import stats

from tfcvr.metrics import paired_difference


def test_without_groups_it_is_the_paired_t_test():
    rng = np.random.default_rng(0)
    baseline = rng.uniform(0, 1, 200)
    candidate = baseline + rng.normal(0.02, 0.1, 200)
    result = paired_difference(candidate, baseline)
    expected = stats.ttest_rel(candidate, baseline, alternative="greater")
    assert result["p_greater"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert result["mean_difference"] == pytest.approx(np.mean(candidate - baseline))
    interval = stats.ttest_rel(candidate, baseline).confidence_interval(0.95)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((interval.low, interval.high), rel=1e-9)
    assert result["records"] == result["groups"] == 200


def test_groups_make_the_standard_error_cluster_robust():
    # Differences 1, 3 (group a), 2 (b), 6 (c): mean 3; group sums 4, 2, 6 with sizes 2, 1, 1.
    # Residuals D_g - n_g * mean: -2, -1, 3; se^2 = 3/2 * (4 + 1 + 9) / 16 = 1.3125 with 2 degrees of freedom.
    result = paired_difference([1.0, 3.0, 2.0, 6.0], [0.0] * 4, groups=[b"a", b"a", b"b", b"c"])
    assert result["mean_difference"] == 3.0 and result["groups"] == 3
    assert result["standard_error"] == pytest.approx(1.3125**0.5)
    assert result["p_greater"] == pytest.approx(stats.t.sf(3.0 / 1.3125**0.5, 2))


def test_degenerate_inputs():
    assert np.isnan(paired_difference([1.0], [0.0])["p_greater"])  # one group: no variance estimate
    assert paired_difference([1.0, 1.0], [0.0, 0.0])["p_greater"] == 0.0  # constant positive differences
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        paired_difference([1.0, 2.0], [1.0])
