import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcvr.layers import MLP, Dropout
from tfcvr.layers.dropout import applied_rate, mask_bits, repeat_rows


def _mask(layer, shape):
    return keras.ops.convert_to_numpy(layer(tf.ones(shape), training=True))


def test_bits_per_decision_are_the_fewest_that_apply_the_rate_within_one_percent():
    # By hand: 0.2 · 256 = 51.2 -> 51/256 = 0.19922 (0.4% off); 0.1 · 256 = 25.6 -> 26/256 = 0.1016 (1.6% off), so
    # 16 bits: 6554/65536; 0.0001 · 65536 = 6.55 -> 7/65536 (6.8% off): Keras' own.
    assert (mask_bits(0.2), applied_rate(0.2)) == (8, 51 / 256)
    assert (mask_bits(0.5), applied_rate(0.5)) == (8, 0.5)
    assert (mask_bits(0.1), applied_rate(0.1)) == (16, 6554 / 65536)
    assert (mask_bits(0.0001), applied_rate(0.0001)) == (None, 0.0001)
    assert mask_bits(1 - 2**-18) is None  # its 16-bit threshold would be 2^16
    # Near 1 the keep probability decides: 0.998 · 256 -> 255 keeps 1/256 = 0.0039, twice 0.002; 16 bits keep
    # 131/65536 = 0.0019989.
    assert (mask_bits(0.998), applied_rate(0.998)) == (16, 65405 / 65536)


@pytest.mark.parametrize(("rate", "unsigned", "threshold"), [(0.2, np.uint8, 51), (0.1, np.uint16, 6554)])
def test_the_mask_is_the_generators_draws_split_into_8_or_16_bit_decisions(rate, unsigned, threshold):
    layer = Dropout(rate, seed=9)
    state = layer.seed_generator.state.numpy()
    kept = _mask(layer, (40, 10)).ravel() > 0
    layer.seed_generator.state.assign(state)  # the same seed again, for the draws by hand
    per_draw = 4 // np.dtype(unsigned).itemsize  # decisions per 32-bit draw
    draws = tf.random.stateless_uniform(
        [400 // per_draw], layer.seed_generator.next(), minval=None, maxval=None, dtype=tf.uint32
    )
    # A draw's bytes (or 16-bit halves) in memory order, as tf.bitcast splits it: one decision each.
    np.testing.assert_array_equal(kept, draws.numpy().view(unsigned) >= threshold)


@pytest.mark.parametrize(("rate", "threshold", "levels"), [(0.2, 51, 256), (0.1, 6554, 65536)])
def test_drops_at_the_applied_rate_and_scales_the_kept_values_to_keep_the_mean(rate, threshold, levels):
    values = _mask(Dropout(rate, seed=1), (500, 200))
    assert set(np.unique(values)) == {0.0, np.float32(levels / (levels - threshold))}
    # 100,000 Bernoulli draws: sd of the dropped fraction at most 0.0013.
    assert abs((values == 0).mean() - threshold / levels) < 4 * np.sqrt(rate * (1 - rate) / values.size)
    assert abs(values.mean() - 1.0) < 4 * np.sqrt(rate / (1 - rate) / values.size)


@pytest.mark.parametrize(("rate", "per_draw"), [(0.5, 4), (0.1, 2)])
def test_elements_decided_by_one_draw_are_independent(rate, per_draw):
    # Each 32-bit draw decides per_draw neighbouring elements (its bytes or 16-bit halves): no pair may correlate.
    kept = (_mask(Dropout(rate, seed=2), (200_000,)) > 0).astype(float).reshape(-1, per_draw)
    correlation = np.corrcoef(kept, rowvar=False)
    off_diagonal = correlation[~np.eye(per_draw, dtype=bool)]
    assert np.all(np.abs(off_diagonal) < 4 / np.sqrt(len(kept)))


@pytest.mark.parametrize("rate", [0.3, 0.1])  # 8 and 16 bits: 21 elements are not a whole number of draws
def test_inference_is_the_identity_and_an_odd_size_is_masked_whole(rate):
    layer = Dropout(rate, seed=3)
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


@pytest.mark.parametrize("rate", [0.2, 0.1, 0.0001])  # 8 bits, 16 bits, Keras' own
def test_passes_are_the_layer_on_the_repeated_rows_without_repeating_them_first(rate):
    x = tf.random.normal((6, 5))
    stacked, copied = Dropout(rate, seed=11), Dropout(rate, seed=11)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = copied(x, training=True, passes=3)
        total = tf.reduce_sum(y)
    expected = stacked(repeat_rows(x, 3), training=True)
    np.testing.assert_array_equal(y.numpy(), expected.numpy())  # the same masks, pass-major: rows of pass p at 6p
    assert y.shape == (18, 5)
    if rate > 0.01:  # the passes draw their own masks (at 0.0001 almost every element is kept in each)
        assert not np.array_equal(y.numpy()[:6] != 0, y.numpy()[6:12] != 0)
    # Each input element collects its kept copies' scale: dy/dx summed over the three passes.
    scale = 1.0 / (1.0 - applied_rate(rate))
    kept = (expected.numpy() != 0).reshape(3, 6, 5).sum(axis=0)
    np.testing.assert_allclose(tape.gradient(total, x).numpy(), kept * np.float32(scale), rtol=1e-6)
    np.testing.assert_array_equal(copied(x, training=False, passes=2).numpy(), repeat_rows(x, 2).numpy())


def test_passes_on_inputs_of_unknown_width_and_rank_three():
    layer = Dropout(0.2, seed=12)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3])])
    def copies(x):
        return layer(x, training=True, passes=2)

    assert copies(tf.ones((4, 5, 3))).shape == (8, 5, 3)
    with pytest.raises(ValueError, match="`passes` must be at least 1. Received: 0"):
        layer(tf.ones((2, 3)), training=True, passes=0)


def test_a_rate_16_bits_cannot_apply_keeps_keras_behaviour():
    np.testing.assert_array_equal(_mask(Dropout(1.0, seed=8), (4, 4)), np.zeros((4, 4)))  # Keras: all dropped
    kept = _mask(Dropout(1 - 2**-18, seed=8), (64, 64))  # threshold would be 2^16, beyond 16 bits
    assert kept.shape == (64, 64) and (kept == 0).mean() > 0.99
    small = _mask(Dropout(0.0001, seed=8), (1000, 100))
    assert set(np.unique(small)) == {0.0, np.float32(1 / 0.9999)}  # Keras' scale by the rate itself


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
