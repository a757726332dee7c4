"""Reductions of per-example losses over a sample space within a batch."""

import tensorflow as tf


def masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of `values` over the examples where `mask` is 1, e.g. the clicked space.

    (1/|D_click|) Σ_{D_click} ℓ in Xu et al., WWW 2022,
    https://doi.org/10.1145/3485447.3512081, Eq. 1–2. A non-negative weight mask
    gives the weighted mean Σ w·ℓ / Σ w. A batch with no example in the space
    contributes 0 (no NaN), so a rare event cannot poison training.
    """
    mask = tf.cast(mask, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(tf.cast(values, tf.float32) * mask), tf.reduce_sum(mask))
