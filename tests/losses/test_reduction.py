import numpy as np
import tensorflow as tf

from tfcvr import losses


def test_masked_mean_over_clicked_space():
    assert np.isclose(losses.masked_mean([1.0, 2.0, 4.0, 8.0], [1, 0, 1, 0]).numpy(), 2.5)


def test_masked_mean_empty_space_is_zero_with_zero_gradient():
    values = tf.Variable([1.0, 2.0])
    with tf.GradientTape() as tape:
        result = losses.masked_mean(values * 3.0, tf.constant([0, 0]))
    assert result.numpy() == 0.0
    np.testing.assert_array_equal(tape.gradient(result, values).numpy(), [0.0, 0.0])
