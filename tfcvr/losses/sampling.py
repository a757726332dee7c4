"""Multi-DR's under-sampling of unclicked impressions (Zhang et al., WWW 2020,
https://doi.org/10.1145/3366423.3380037, §5.3)."""

import tensorflow as tf


def undersample_unclicked(click: tf.Tensor, rate: float) -> tf.Tensor:
    """A 0/1 mask keeping every clicked row and about (rate − 1)·n_clicked unclicked rows.

    λ = `rate`: "if the number of clicked samples is 100 and the batch size is
    1000, λ = 1.5 means the samples used are 100 × 1.5 = 150". Each unclicked
    row is kept with probability min(1, (λ − 1)·n_clicked / n_unclicked).
    """
    if rate < 1.0:
        raise ValueError(f"The under-sampling rate λ must be at least 1. Received: {rate}")
    click = tf.cast(click, tf.float32)
    clicked = tf.reduce_sum(click)
    unclicked = tf.reduce_sum(1.0 - click)
    keep_probability = tf.minimum(1.0, tf.math.divide_no_nan((rate - 1.0) * clicked, unclicked))
    kept = tf.cast(tf.random.uniform(tf.shape(click)) < keep_probability, tf.float32)
    return tf.maximum(click, kept)


def keep_lowest(values: tf.Tensor, mask: tf.Tensor, fraction: float) -> tf.Tensor:
    """A 0/1 mask keeping the ⌈fraction·n⌉ rows of `mask` with the lowest `values` (n = rows in `mask`).

    UKD's Monte-Carlo-dropout baseline ranks unclicked rows by the variance of
    their pseudo-labels and keeps the lowest 80% (Xu et al., WWW 2022,
    https://doi.org/10.1145/3485447.3512081, §4.4); within a
    batch this is that ranking. Ties are broken by row order.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"The kept fraction must be in (0, 1]. Received: {fraction}")
    mask = tf.cast(mask, tf.bool)
    values = tf.where(mask, tf.cast(values, tf.float32), float("inf"))
    ranks = tf.argsort(tf.argsort(values, stable=True), stable=True)
    kept = tf.cast(tf.math.ceil(fraction * tf.reduce_sum(tf.cast(mask, tf.float32))), tf.int32)
    return tf.cast(mask & (ranks < kept), tf.float32)
