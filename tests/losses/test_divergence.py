import numpy as np
import pytest

from tfcvr.losses import bernoulli_kl


def test_bernoulli_kl_by_hand():
    p, q = np.array([0.6, 0.3, 0.5]), np.array([0.5, 0.4, 0.5])
    expected = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    np.testing.assert_allclose(bernoulli_kl(p, q).numpy(), expected, rtol=1e-5)
    assert float(bernoulli_kl([0.6], [0.5])[0]) != pytest.approx(float(bernoulli_kl([0.5], [0.6])[0]))
    assert float(bernoulli_kl([0.5], [0.5])[0]) == 0.0


def test_saturated_probabilities_stay_finite():
    assert np.all(np.isfinite(bernoulli_kl([1.0, 0.0], [0.0, 1.0]).numpy()))
