"""The property the papers prove, checked by simulation over many click draws.

IPW with the true propensity (Theorem 1) and DR with either the true
propensity or the true error (Theorem 2) estimate the ideal loss
(1/|D|) Σ_D e without bias; the click-space average does not.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfcvr import losses

ROWS, DRAWS = 60, 4000


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    propensity = rng.uniform(0.05, 0.9, ROWS).astype(np.float32)
    # Errors correlate with the propensity: the missing-not-at-random case.
    error = (2.0 * propensity + rng.uniform(0.0, 0.5, ROWS)).astype(np.float32)
    clicks = (rng.random((DRAWS, ROWS)) < propensity).astype(np.float32)
    return tf.constant(propensity), tf.constant(error), tf.constant(clicks), float(error.mean())


def _estimates(estimator, clicks):
    return tf.vectorized_map(estimator, clicks).numpy()


def _assert_unbiased(values, ideal):
    standard_error = values.std() / np.sqrt(len(values))
    assert abs(values.mean() - ideal) < 4 * standard_error + 1e-6, (values.mean(), ideal, standard_error)


def test_naive_click_space_average_is_biased(world):
    propensity, error, clicks, ideal = world
    naive = _estimates(lambda o: losses.masked_mean(error, o), clicks)
    assert naive.mean() - ideal > 20 * naive.std() / np.sqrt(DRAWS)


def test_ipw_with_true_propensity_is_unbiased(world):
    propensity, error, clicks, ideal = world
    ipw = losses.InversePropensityLoss(propensity_floor=1e-6)
    _assert_unbiased(_estimates(lambda o: ipw(o, propensity, error), clicks), ideal)


def test_dr_unbiased_with_true_propensity_and_wrong_imputation(world):
    propensity, error, clicks, ideal = world
    dr = losses.DoublyRobustLoss(propensity_floor=1e-6)
    wrong_imputation = tf.fill([ROWS], 0.5)
    _assert_unbiased(_estimates(lambda o: dr(o, propensity, error, wrong_imputation), clicks), ideal)


def test_dr_exact_with_true_imputation_and_wrong_propensity(world):
    propensity, error, clicks, ideal = world
    dr = losses.DoublyRobustLoss(propensity_floor=1e-6)
    wrong_propensity = tf.clip_by_value(0.5 * propensity + 0.2, 0.0, 1.0)
    values = _estimates(lambda o: dr(o, wrong_propensity, error, error), clicks)
    np.testing.assert_allclose(values, ideal, rtol=1e-5)


def test_dr_biased_when_both_are_wrong(world):
    propensity, error, clicks, ideal = world
    dr = losses.DoublyRobustLoss(propensity_floor=1e-6)
    wrong_propensity = tf.clip_by_value(0.5 * propensity + 0.2, 0.0, 1.0)
    values = _estimates(lambda o: dr(o, wrong_propensity, error, tf.fill([ROWS], 0.5)), clicks)
    assert abs(values.mean() - ideal) > 10 * values.std() / np.sqrt(DRAWS)
