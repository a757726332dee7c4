import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcvr.layers import GradientReversal


def test_identity_forward_and_negated_gradient_into_the_representation():
    representation = tf.Variable([[1.0, -2.0]])
    discriminator = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(3.0))
    reversal = GradientReversal(scale=0.5)
    with tf.GradientTape(persistent=True) as tape:
        reversed_features = reversal(representation)
        loss = tf.reduce_sum(discriminator(reversed_features))
    np.testing.assert_array_equal(reversed_features.numpy(), representation.numpy())
    # d loss / d representation would be the kernel (3, 3); reversed and scaled: -1.5.
    np.testing.assert_allclose(tape.gradient(loss, representation).numpy(), [[-1.5, -1.5]])
    # The discriminator itself is trained normally: d loss / d kernel = representation.
    np.testing.assert_allclose(tape.gradient(loss, discriminator.kernel).numpy(), [[1.0], [-2.0]])


def test_config_round_trip_and_invalid_scale():
    layer = GradientReversal(scale=2.0)
    assert GradientReversal.from_config(layer.get_config()).scale == 2.0
    with pytest.raises(ValueError, match="`scale` must be non-negative"):
        GradientReversal(scale=-1.0)
