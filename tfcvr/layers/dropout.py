"""Dropout whose keep mask costs half the random bits of Keras' (16 per element, not 32)."""

import keras
import tensorflow as tf

# The keep decision compares 16 random bits with the rate scaled to this many levels.
MASK_LEVELS = 1 << 16


@keras.saving.register_keras_serializable(package="tfcvr")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` with a cheaper keep mask; the same layer otherwise.

    Keras draws one 32-bit uniform float per element (TensorFlow's Philox
    generator); generating those numbers is most of dropout's cost on CPU, and
    most of a step where dropout runs over many rows (UKD's Monte-Carlo-dropout
    teacher scores every batch 10 times). Here each 32-bit draw of the same
    generator decides two elements: an element is kept when its 16 random bits
    are at least round(rate · 2^16), so the rate is applied to within 2^-17
    (0.2 drops with probability 13107/65536 = 0.199997). Kept values are scaled
    by 1/(1 − rate), as Keras does; the mask is drawn from the layer's seed
    generator, so a seeded model repeats its masks. With a `noise_shape`, or a
    rate within 2^-17 of 1 (which 16 bits cannot tell from 1), the layer is
    Keras' own.

    Example:
    >>> layer = Dropout(0.5, seed=1)
    >>> y = layer(keras.ops.ones((1000, 8)), training=True)
    >>> sorted(set(keras.ops.convert_to_numpy(y).ravel().tolist()))
    [0.0, 2.0]
    """

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        if (
            not training
            or self.rate == 0
            or self.noise_shape is not None
            or round(self.rate * MASK_LEVELS) >= MASK_LEVELS
        ):
            return super().call(inputs, training=training)
        size = tf.size(inputs)
        bits = tf.random.stateless_uniform(
            [(size + 1) // 2], self.seed_generator.next(), minval=None, maxval=None, dtype=tf.uint32
        )
        halves = tf.reshape(tf.bitcast(bits, tf.uint16), [-1])[:size]  # two 16-bit draws per 32-bit one
        threshold = tf.constant(round(self.rate * MASK_LEVELS), tf.uint16)
        keep = tf.reshape(halves, tf.shape(inputs)) >= threshold
        # One product with the scaled 0/1 mask: cheaper than a select against zeros, forward and backward.
        return inputs * (tf.cast(keep, inputs.dtype) * (1.0 / (1.0 - self.rate)))
