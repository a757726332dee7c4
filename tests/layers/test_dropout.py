import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcvr.layers import MLP, Dropout
from tfcvr.layers.dropout import MASK_LEVELS


def _mask(layer, shape):
    return keras.ops.convert_to_numpy(layer(tf.ones(shape), training=True))


def test_drops_at_the_rate_and_scales_the_kept_values():
    values = _mask(Dropout(0.2, seed=1), (500, 200))
    assert set(np.unique(values)) == {0.0, np.float32(1 / 0.8)}
    # 100,000 Bernoulli(0.2) draws: sd of the dropped fraction 0.0013.
    assert abs((values == 0).mean() - 13107 / MASK_LEVELS) < 4 * np.sqrt(0.2 * 0.8 / values.size)
    assert round(0.2 * MASK_LEVELS) == 13107  # the threshold of the 16 random bits, by hand


def test_neighbouring_elements_are_independent():
    # Each 32-bit draw decides two neighbouring elements (its two 16-bit halves): their masks must not correlate.
    kept = (_mask(Dropout(0.5, seed=2), (100_000,)) > 0).astype(float).reshape(-1, 2)
    assert abs(np.corrcoef(kept[:, 0], kept[:, 1])[0, 1]) < 4 / np.sqrt(len(kept))


def test_inference_is_the_identity_and_an_odd_size_is_masked_whole():
    layer = Dropout(0.3, seed=3)
    x = tf.random.normal((7, 3))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x.numpy())
    assert _mask(layer, (7, 3)).shape == (7, 3) and _mask(layer, (1,)).shape == (1,)


def test_seeded_masks_repeat_and_successive_calls_draw_new_ones():
    first, second = Dropout(0.5, seed=4), Dropout(0.5, seed=4)
    a = _mask(first, (64, 64))
    np.testing.assert_array_equal(a, _mask(second, (64, 64)))
    assert (a != _mask(first, (64, 64))).mean() > 0.3


def test_gradient_flows_through_the_kept_elements_only():
    layer = Dropout(0.5, seed=5)
    x = tf.ones((32, 16))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        total = tf.reduce_sum(y)
    gradient = tape.gradient(total, x).numpy()
    np.testing.assert_array_equal(gradient, np.where(y.numpy() > 0, 2.0, 0.0))


def test_a_rate_16_bits_cannot_tell_from_1_keeps_keras_behaviour():
    np.testing.assert_array_equal(_mask(Dropout(1.0, seed=8), (4, 4)), np.zeros((4, 4)))  # Keras: all dropped
    kept = _mask(Dropout(1 - 2**-18, seed=8), (64, 64))  # threshold would be 2^16, beyond 16 bits
    assert kept.shape == (64, 64) and (kept == 0).mean() > 0.99


def test_noise_shape_keeps_keras_behaviour():
    values = _mask(Dropout(0.5, noise_shape=(None, 1), seed=6), (200, 8))
    assert np.all(values == values[:, :1])  # one decision per row


def test_round_trips_through_its_config_and_is_the_mlp_dropout():
    layer = Dropout(0.25, seed=7, name="d")
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is Dropout and restored.rate == 0.25
    assert type(MLP((4,), dropout=0.1).dropout_layer) is Dropout
    with pytest.raises(ValueError):
        Dropout(1.5)
