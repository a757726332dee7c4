"""A stack of Dense + ReLU (+ dropout) layers."""

import keras
import tensorflow as tf

from tfcvr.layers.dropout import Dropout, repeat_rows


@keras.saving.register_keras_serializable(package="tfcvr")
class MLP(keras.layers.Layer):
    """Dense layers with ReLU activations and optional dropout after each.

    Args:
      units: widths of the hidden layers, e.g. (256, 128). Empty = identity.
      dropout: dropout rate after each layer, in [0, 1).
      batch_norm: batch normalisation before each activation (DDPO's towers use it).

    Example:
    >>> mlp = MLP(units=(8, 4))
    >>> mlp(keras.ops.ones((2, 3))).shape
    (2, 4)
    """

    def __init__(self, units=(128, 64), dropout=0.0, batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        units = tuple(int(u) for u in units)
        if any(u < 1 for u in units):
            raise ValueError(f"`units` must all be positive. Received: {units}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: {dropout}")
        self.units = units
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.dense_layers = [keras.layers.Dense(u, name=f"dense_{i}") for i, u in enumerate(units)]
        self.norm_layers = (
            [keras.layers.BatchNormalization(name=f"batch_norm_{i}") for i in range(len(units))] if batch_norm else []
        )
        self.dropout_layer = Dropout(dropout) if dropout > 0 else None

    def build(self, input_shape: tuple) -> None:
        shape = input_shape
        for i, dense in enumerate(self.dense_layers):
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
            if self.norm_layers:
                self.norm_layers[i].build(shape)

    def call(self, inputs: tf.Tensor, training: bool | None = None, passes: int = 1) -> tf.Tensor:
        """The stack on `inputs`; with `passes` > 1, that many dropout passes per row, stacked pass-major.

        `passes`: Monte-Carlo dropout ([passes · batch, width], the rows of
        pass p at p · batch ...). Only dropout differs between passes, so the
        first layer (Dense, normalisation, ReLU) runs once per row and the
        first dropout makes the copies (`Dropout.call`'s `passes`): the same
        values and masks as the stack on the input repeated `passes` times,
        without repeating the widest product. Normalisation's batch statistics
        are unchanged by repeating every row alike.
        """
        x = inputs
        for i, dense in enumerate(self.dense_layers):
            x = dense(x)
            if self.norm_layers:
                x = self.norm_layers[i](x, training=training)
            x = keras.ops.relu(x)
            if self.dropout_layer is not None:
                x = self.dropout_layer(x, training=training, passes=passes if i == 0 else 1)
        return x if self.dense_layers and self.dropout_layer is not None else repeat_rows(x, passes)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape[:-1]) + ((self.units[-1],) if self.units else (input_shape[-1],))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": list(self.units),
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
        }
