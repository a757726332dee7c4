"""Dropout whose keep mask costs a quarter or half the random bits of Keras' (8 or 16 per element, not 32)."""

import keras
import tensorflow as tf

# Random bits per keep decision, fewest first: a layer uses the fewest that apply both its drop and its keep
# probability to within RATE_TOLERANCE of themselves (relative; near 1 the keep probability is the small one); a rate
# none of them can apply falls back to Keras' 32-bit uniform floats.
MASK_BITS = (8, 16)
RATE_TOLERANCE = 0.01
_UNSIGNED = {8: tf.uint8, 16: tf.uint16}


def mask_threshold(rate: float, bits: int) -> int:
    """round(rate · 2^bits): an element whose `bits` random bits are at least this is kept."""
    return round(rate * (1 << bits))


def mask_bits(rate: float) -> int | None:
    """How many random bits decide one element at `rate` (`MASK_BITS`), or None when none apply it closely enough."""
    for bits in MASK_BITS:
        levels, threshold = 1 << bits, mask_threshold(rate, bits)
        if 0 < threshold < levels and abs(threshold / levels - rate) <= RATE_TOLERANCE * min(rate, 1.0 - rate):
            return bits
    return None


def applied_rate(rate: float) -> float:
    """The drop probability the mask applies for `rate`: round(rate · 2^bits) / 2^bits (`rate` itself with Keras')."""
    bits = mask_bits(rate)
    return rate if bits is None else mask_threshold(rate, bits) / (1 << bits)


@keras.saving.register_keras_serializable(package="tfcvr")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` with a cheaper keep mask; the same layer otherwise.

    Keras draws one 32-bit uniform float per element (TensorFlow's Philox
    generator); generating those numbers is most of dropout's cost on CPU, and
    most of a step where dropout runs over many rows (UKD's Monte-Carlo-dropout
    teacher scores every batch 10 times). Here each 32-bit draw of the same
    generator decides four elements (8 bits each) or two (16 bits each): an
    element is kept when its bits are at least round(rate · 2^bits). A layer
    uses 8 bits when they apply its drop and keep probabilities to within 1%
    of themselves, else 16: 0.2 drops with probability 51/256 = 0.1992 (8
    bits), 0.1 with 6554/65536 = 0.10001 (16 bits; 8 bits would give 0.1016),
    0.998 keeps with 131/65536 = 0.0020 (8 bits would keep 0.0039). Kept values
    are scaled by 1/(1 − applied rate), so the expected output is the input,
    as with Keras' 1/(1 − rate). The mask is drawn from the layer's seed
    generator, so a seeded model repeats its masks. With a `noise_shape`, or
    a rate that 16 bits cannot apply to within 1% (within a few ten-thousandths
    of 0 or of 1), the layer is Keras' own.

    Example:
    >>> layer = Dropout(0.5, seed=1)
    >>> y = layer(keras.ops.ones((1000, 8)), training=True)
    >>> sorted(set(keras.ops.convert_to_numpy(y).ravel().tolist()))
    [0.0, 2.0]
    """

    def call(self, inputs: tf.Tensor, training: bool = False, passes: int = 1) -> tf.Tensor:
        """`passes` > 1: that many independently masked copies of `inputs`, stacked pass-major.

        [passes · batch, ...], the rows of pass p at p · batch ...: the values and masks of this layer on
        `repeat_rows(inputs, passes)`, with the copies made by the mask's product (broadcast over the passes)
        instead of a repeated input first (Monte-Carlo dropout, `MLP.call`).
        """
        check_passes(passes)
        bits = mask_bits(self.rate)
        if not training or self.noise_shape is not None or bits is None:  # rate 0 has no bits either
            return super().call(repeat_rows(inputs, passes), training=training)
        per_draw = 32 // bits
        mask_shape = tf.shape(inputs) if passes == 1 else tf.concat([[passes], tf.shape(inputs)], axis=0)
        size = tf.reduce_prod(mask_shape)
        draws = tf.random.stateless_uniform(
            [(size + per_draw - 1) // per_draw], self.seed_generator.next(), minval=None, maxval=None, dtype=tf.uint32
        )
        parts = tf.reshape(tf.bitcast(draws, _UNSIGNED[bits]), [-1])[:size]  # per_draw decisions per 32-bit draw
        threshold = tf.constant(mask_threshold(self.rate, bits), _UNSIGNED[bits])
        keep = tf.reshape(parts, mask_shape) >= threshold
        # One product with the scaled 0/1 mask: cheaper than a select against zeros, forward and backward.
        dropped = inputs * (tf.cast(keep, inputs.dtype) * (1.0 / (1.0 - applied_rate(self.rate))))
        return dropped if passes == 1 else tf.reshape(dropped, tf.concat([[-1], tf.shape(inputs)[1:]], axis=0))


def repeat_rows(x: tf.Tensor, passes: int) -> tf.Tensor:
    """`x` [batch, ...] stacked `passes` times along the batch, pass-major: [passes · batch, ...]."""
    check_passes(passes)
    return x if passes == 1 else keras.ops.tile(x, [passes] + [1] * (len(x.shape) - 1))


def check_passes(passes: int) -> None:
    """Raises unless `passes` (Monte-Carlo dropout passes) is at least 1."""
    if passes < 1:
        raise ValueError(f"`passes` must be at least 1. Received: {passes}")
