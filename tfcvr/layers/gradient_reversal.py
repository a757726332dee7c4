"""Gradient reversal: identity forward, −λ·gradient backward.

Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015, https://arxiv.org/abs/1409.7495.
"""

import keras
import tensorflow as tf


@tf.custom_gradient
def _reverse_gradient(x, scale):
    def gradient(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return -scale * upstream, tf.zeros_like(scale)

    return tf.identity(x), gradient


@keras.saving.register_keras_serializable(package="tfcvr")
class GradientReversal(keras.layers.Layer):
    """Passes its input through and multiplies the gradient by −`scale` on the way back.

    Placed between a representation and a discriminator (UKD's click-adaptive
    teacher, Xu et al., WWW 2022,
    https://doi.org/10.1145/3485447.3512081, Eq. 5-7), the discriminator learns to tell clicked from
    unclicked impressions while the representation learns to fool it.

    Args:
      scale: λ ≥ 0, the strength of the reversed gradient. Default 1.0.

    Example:
    >>> GradientReversal(scale=0.5)(keras.ops.ones((2, 3))).shape
    (2, 3)
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        if scale < 0:
            raise ValueError(f"`scale` must be non-negative. Received: {scale}")
        self.scale = scale

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return _reverse_gradient(inputs, tf.constant(self.scale, dtype=inputs.dtype))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}
