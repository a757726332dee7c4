"""Shared-bottom backbone: one MLP whose output every task tower reads."""

import keras
import tensorflow as tf

from tfcvr.layers.mlp import MLP


@keras.saving.register_keras_serializable(package="tfcvr")
class SharedBottom(keras.layers.Layer):
    """Hard parameter sharing (Caruana 1997): every task sees the same representation.

    Args:
      num_tasks: how many task representations to return.
      units: widths of the shared MLP.
      dropout: dropout after each shared layer.

    Returns a list of `num_tasks` tensors (the same tensor), the interface every
    backbone shares.

    Example:
    >>> SharedBottom(num_tasks=2, units=(8,))(keras.ops.ones((3, 5)))[1].shape
    (3, 8)
    """

    def __init__(self, num_tasks, units=(256, 128), dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if num_tasks < 1:
            raise ValueError(f"`num_tasks` must be positive. Received: {num_tasks}")
        self.num_tasks = num_tasks
        self.units = tuple(units)
        self.dropout = dropout
        self.bottom = MLP(self.units, dropout=dropout, name="bottom")

    def build(self, input_shape: tuple) -> None:
        self.bottom.build(input_shape)

    def call(self, inputs: tf.Tensor, training: bool | None = None, passes: int = 1) -> list[tf.Tensor]:
        """`passes` > 1: Monte-Carlo dropout passes stacked pass-major (`MLP.call`)."""
        shared = self.bottom(inputs, training=training, passes=passes)
        return [shared] * self.num_tasks

    def compute_output_shape(self, input_shape: tuple) -> list[tuple]:
        return [self.bottom.compute_output_shape(input_shape)] * self.num_tasks

    def get_config(self) -> dict:
        return {**super().get_config(), "num_tasks": self.num_tasks, "units": list(self.units), "dropout": self.dropout}
