import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcvr.layers import VariationalInformation

TEACHER = np.array([[1.0, -1.0], [0.5, 2.0]], np.float32)
STUDENT = np.array([[2.0, 0.0, 1.0], [0.0, 1.0, -1.0]], np.float32)
KERNEL = np.array([[0.5, 0.0], [1.0, -1.0], [0.0, 2.0]], np.float32)
BIAS = np.array([0.1, -0.2], np.float32)
RHO = np.array([0.0, 1.0], np.float32)


def _layer(**kwargs):
    layer = VariationalInformation(**kwargs)
    layer([TEACHER, STUDENT])
    layer.mean.kernel.assign(KERNEL)
    layer.mean.bias.assign(BIAS)
    layer.rho.assign(RHO)
    return layer


def _by_hand():
    mean = STUDENT @ KERNEL + BIAS  # μ = f(s; θ_s)
    variance = np.log1p(np.exp(RHO)) + 1e-3  # softplus(ρ) + 1e-3
    return 0.5 * np.log(variance) + (TEACHER - mean) ** 2 / (2 * variance)  # Eq. 11, per entry


def test_loss_by_hand_sum_and_mean():
    np.testing.assert_allclose(_layer()([TEACHER, STUDENT]).numpy(), _by_hand().sum(-1), rtol=1e-5)
    np.testing.assert_allclose(_layer(reduction="mean")([TEACHER, STUDENT]).numpy(), _by_hand().mean(-1), rtol=1e-5)


def test_variance_learns_or_stays_frozen():
    learned, frozen = _layer(), _layer(learn_variance=False)
    assert any(v is learned.rho for v in learned.trainable_variables)
    assert all(v is not frozen.rho for v in frozen.trainable_variables)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(learned([TEACHER, STUDENT]))
    gradient = tape.gradient(loss, learned.rho).numpy()
    # d/dρ [½ log σ² + d²/(2σ²)] = (1/(2σ²) − d²/(2σ⁴)) · sigmoid(ρ), summed over the batch.
    variance = np.log1p(np.exp(RHO)) + 1e-3
    squared = ((TEACHER - (STUDENT @ KERNEL + BIAS)) ** 2).sum(0)
    expected = (2 / (2 * variance) - squared / (2 * variance**2)) / (1 + np.exp(-RHO))
    np.testing.assert_allclose(gradient, expected, rtol=1e-4)


def test_official_initial_variance_and_config():
    layer = VariationalInformation()
    layer([TEACHER, STUDENT])
    np.testing.assert_allclose(layer.variance().numpy(), np.log1p(np.exp(5.0)) + 1e-3, rtol=1e-6)
    config = VariationalInformation(learn_variance=False, reduction="mean").get_config()
    assert VariationalInformation.from_config(config).reduction == "mean"
    with pytest.raises(ValueError, match="`reduction` must be one of"):
        VariationalInformation(reduction="max")
    assert keras.ops.shape(layer([TEACHER, STUDENT])) == (2,)
