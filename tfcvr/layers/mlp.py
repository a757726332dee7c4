"""A stack of Dense + ReLU (+ dropout) layers, and several of them run as one (`parallel_mlps`)."""

import keras
import tensorflow as tf


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
        self.dropout_layer = keras.layers.Dropout(dropout) if dropout > 0 else None

    def build(self, input_shape: tuple) -> None:
        shape = input_shape
        for i, dense in enumerate(self.dense_layers):
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
            if self.norm_layers:
                self.norm_layers[i].build(shape)

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = inputs
        for i, dense in enumerate(self.dense_layers):
            x = dense(x)
            if self.norm_layers:
                x = self.norm_layers[i](x, training=training)
            x = keras.ops.relu(x)
            if self.dropout_layer is not None:
                x = self.dropout_layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape[:-1]) + ((self.units[-1],) if self.units else (input_shape[-1],))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": list(self.units),
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
        }


def dense_side_by_side(inputs: tf.Tensor, layers: list) -> tf.Tensor:
    """[inputs @ W_1 + b_1, inputs @ W_2 + b_2, ...] of Dense layers (no activation) as one matrix product.

    The layers keep their own weights (and so their checkpoint paths); one
    wide product costs less than several narrow ones on CPU.
    """
    kernel = keras.ops.concatenate([layer.kernel for layer in layers], axis=-1)
    bias = keras.ops.concatenate([layer.bias for layer in layers], axis=-1)
    return keras.ops.matmul(inputs, kernel) + bias


def parallel_mlps(mlps: list, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
    """The MLPs' outputs on one input, stacked: [batch, len(mlps), width].

    MLPs of the same widths without batch normalisation (experts of MMoE and
    PLE) run together: their first layers as one matrix product
    (`dense_side_by_side`), each later layer as one batched product of their
    stacked kernels, each with its own weights; the first MLP's dropout masks
    the stacked activations (the same rate, fresh noise per unit). Otherwise
    each MLP runs on its own.
    """
    first = mlps[0]
    alike = all(mlp.units == first.units and mlp.dropout == first.dropout for mlp in mlps)
    if len(mlps) == 1 or not alike or first.batch_norm or not first.units or len(inputs.shape) != 2:
        return keras.ops.stack([mlp(inputs, training=training) for mlp in mlps], axis=1)
    x = keras.ops.relu(dense_side_by_side(inputs, [mlp.dense_layers[0] for mlp in mlps]))
    x = _dropout(first, x, training)
    x = keras.ops.transpose(keras.ops.reshape(x, (-1, len(mlps), first.units[0])), (1, 0, 2))  # [mlps, batch, width]
    for index in range(1, len(first.units)):
        layers = [mlp.dense_layers[index] for mlp in mlps]
        kernels = tf.stack([tf.convert_to_tensor(layer.kernel) for layer in layers])  # [mlps, in, out]
        biases = tf.stack([tf.convert_to_tensor(layer.bias) for layer in layers])[:, None, :]
        x = _dropout(first, keras.ops.relu(keras.ops.matmul(x, kernels) + biases), training)
    return keras.ops.transpose(x, (1, 0, 2))


def _dropout(mlp: MLP, x: tf.Tensor, training: bool | None) -> tf.Tensor:
    return x if mlp.dropout_layer is None else mlp.dropout_layer(x, training=training)
