"""Per-example binary cross-entropy on probabilities: δ(y, p) in the papers."""

import keras
import tensorflow as tf


def binary_crossentropy(labels: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
    """δ(y, p) = -y log p - (1 - y) log(1 - p), element-wise, shape of `labels`.

    Keras clips p to [1e-7, 1 - 1e-7] first, so a product such as ESMM's
    pCTR * pCVR never yields log(0). Labels may be soft (in [0, 1]), as the
    pseudo-labels of later methods are; int64 labels are cast.
    """
    return keras.ops.binary_crossentropy(
        tf.cast(labels, tf.float32), tf.cast(probabilities, tf.float32), from_logits=False
    )
