"""The propensity-weighted loss family against hand-computed values on a 5-row batch."""

import numpy as np
import pytest
import tensorflow as tf

from tfcvr import losses

CLICK = tf.constant([1, 1, 0, 1, 0], tf.int64)
PROPENSITY = tf.constant([0.5, 0.2, 0.3, 0.04, 0.1])
ERROR = tf.constant([0.4, 1.0, 2.0, 0.5, 3.0])
IMPUTED = tf.constant([0.3, 0.6, 1.5, 0.7, 0.2])
# With floor 0.05, o/ô = [2, 5, 0, 20, 0]; with max_weight 10, [2, 5, 0, 10, 0].
CASES = {
    # (normalization, max_weight): (ipw, dr correction term, imputation)
    ("none", None): (15.8 / 5, -1.8 / 5, 1.62 / 5),
    ("none", 10.0): (10.8 / 5, (0.2 + 2.0 - 2.0) / 5, (0.02 + 0.8 + 0.4) / 5),
    ("click_count", None): (15.8 / 3, -1.8 / 3, 1.62 / 3),
    ("click_count", 10.0): (10.8 / 3, 0.2 / 3, 1.22 / 3),
    ("clicked_rows", None): (15.8 / 27, -1.8 / 27, 1.62 / 27),
    ("clicked_rows", 10.0): (10.8 / 17, 0.2 / 17, 1.22 / 17),
}


@pytest.mark.parametrize("normalization, max_weight", list(CASES))
def test_losses_by_hand(normalization, max_weight):
    ipw, correction, imputation = CASES[(normalization, max_weight)]
    options = dict(propensity_floor=0.05, max_weight=max_weight, normalization=normalization)
    assert float(losses.InversePropensityLoss(**options)(CLICK, PROPENSITY, ERROR)) == pytest.approx(ipw, rel=1e-5)
    dr = losses.DoublyRobustLoss(**options)(CLICK, PROPENSITY, ERROR, IMPUTED)
    assert float(dr) == pytest.approx(3.3 / 5 + correction, rel=1e-5)  # mean ê = 0.66
    imp = losses.ImputationLoss(**options)(CLICK, PROPENSITY, ERROR, IMPUTED)
    assert float(imp) == pytest.approx(imputation, rel=1e-5)


def test_sample_mask_restricts_both_terms():
    mask = tf.constant([1, 1, 0, 1, 1])
    options = dict(propensity_floor=0.05)
    assert float(losses.InversePropensityLoss(**options)(CLICK, PROPENSITY, ERROR, mask)) == pytest.approx(15.8 / 4)
    dr = losses.DoublyRobustLoss(**options)(CLICK, PROPENSITY, ERROR, IMPUTED, mask)
    assert float(dr) == pytest.approx(1.8 / 4 - 1.8 / 4, abs=1e-6)


@pytest.mark.parametrize("detach", [True, False])
def test_propensity_gradient_only_when_not_detached(detach):
    propensity = tf.Variable(PROPENSITY)
    with tf.GradientTape() as tape:
        value = losses.InversePropensityLoss(detach_propensity=detach)(CLICK, propensity, ERROR)
    gradient = tape.gradient(value, propensity)
    if detach:
        assert gradient is None
    else:
        # d/dô (o·e/(5ô)) = -o·e/(5ô²) on clicked rows.
        expected = -np.array([1, 1, 0, 1, 0]) * ERROR.numpy() / (5 * PROPENSITY.numpy() ** 2)
        np.testing.assert_allclose(gradient.numpy(), expected, rtol=1e-5)


def test_imputation_loss_trains_only_the_imputation():
    error, imputed = tf.Variable(ERROR), tf.Variable(IMPUTED)
    with tf.GradientTape() as tape:
        value = losses.ImputationLoss(propensity_floor=0.05)(CLICK, PROPENSITY, error, imputed)
    error_gradient, imputed_gradient = tape.gradient(value, [error, imputed])
    assert error_gradient is None
    # d/dê Σ w (e − ê)² = -2 w (e − ê), w = [2, 5, 0, 20, 0] / 5.
    expected = -2 * np.array([2, 5, 0, 20, 0]) / 5 * (ERROR.numpy() - IMPUTED.numpy())
    np.testing.assert_allclose(imputed_gradient.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(propensity_floor=0.0), "`propensity_floor` must be in"),
        (dict(max_weight=0.5), "`max_weight` must be at least 1"),
        (dict(normalization="batch"), "`normalization` must be one of"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        losses.PropensityWeightedLoss(**kwargs)


def test_undersampling_keeps_clicks_and_about_lambda_times_clicks():
    tf.random.set_seed(0)
    click = tf.constant([1] * 100 + [0] * 900)
    kept = [float(tf.reduce_sum(losses.undersample_unclicked(click, 1.5))) for _ in range(50)]
    mask = losses.undersample_unclicked(click, 1.5).numpy()
    assert np.all(mask[:100] == 1)
    assert np.mean(kept) == pytest.approx(150, rel=0.05)
    with pytest.raises(ValueError, match="at least 1"):
        losses.undersample_unclicked(click, 0.5)


def test_non_click_and_dual_spaces_by_hand():
    ipw = losses.InversePropensityLoss(propensity_floor=0.05)
    # Unclicked rows 2 and 4: weights 1/(1 − 0.3) and 1/(1 − 0.1), divided by |D| = 5.
    non_click = (2.0 / 0.7 + 3.0 / 0.9) / 5
    assert float(ipw.non_click(CLICK, PROPENSITY, ERROR)) == pytest.approx(non_click, rel=1e-5)
    assert float(ipw.dual(CLICK, PROPENSITY, ERROR)) == pytest.approx(15.8 / 5 + non_click, rel=1e-5)
