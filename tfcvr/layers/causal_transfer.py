"""DDPO's causal transfer module: attention that fuses a propensity feature into the CVR feature."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfcvr")
class CausalTransfer(keras.layers.Layer):
    """f_out = Σ_j softmax_j(⟨θ_q(f_r), θ_k(t_j)⟩ / √d) θ_v(t_j) over the tokens t = [f_p, f_r].

    Su et al., SIGIR 2024,
    https://doi.org/10.1145/3626772.3657817, Eq. 12-14: T(f_p, f_r) fuses a propensity network's task feature
    f_p (click or conversion propensity) with the CVR feature f_r. θ_q, θ_k and
    θ_v are fully connected layers of width d (the inputs' width). The paper
    leaves open which token asks; here the CVR feature is the query and both
    features are keys and values, so the CVR network chooses how much
    propensity information to take. No stop-gradient: the CVR loss reaches
    the propensity networks through this module, as in the official code.

    Inputs: [f_p, f_r], each [batch, d]. Output: [batch, d].

    Example:
    >>> CausalTransfer()([keras.ops.ones((2, 4)), keras.ops.zeros((2, 4))]).shape
    (2, 4)
    """

    def build(self, input_shape: list[tuple]) -> None:
        width = input_shape[1][-1]
        if input_shape[0][-1] != width:
            raise ValueError(f"CausalTransfer needs two inputs of the same width. Received shapes: {input_shape}")
        self.width = width
        self.query = keras.layers.Dense(width, name="query")
        self.key = keras.layers.Dense(width, name="key")
        self.value = keras.layers.Dense(width, name="value")
        for layer in (self.query, self.key, self.value):
            layer.build((None, width))

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        propensity_feature, cvr_feature = inputs
        # θ_k and θ_v of both tokens and θ_q of f_r in two matrix products (the layers' own weights side by side)
        # instead of five; contractions as products and sums: as einsum, oneDNN runs them as one tiny matrix
        # product per example.
        key_value = [self.key, self.value]
        propensity_key, propensity_value = keras.ops.split(_dense(propensity_feature, key_value), 2, axis=-1)
        query, cvr_key, cvr_value = keras.ops.split(_dense(cvr_feature, [self.query, *key_value]), 3, axis=-1)
        scores = keras.ops.stack(
            [keras.ops.sum(query * propensity_key, axis=-1), keras.ops.sum(query * cvr_key, axis=-1)], axis=-1
        )
        weights = keras.ops.softmax(scores / float(self.width) ** 0.5, axis=-1)  # Eq. 13, [batch, 2]
        return weights[:, :1] * propensity_value + weights[:, 1:] * cvr_value  # Eq. 12

    def compute_output_shape(self, input_shape: list[tuple]) -> tuple:
        return input_shape[1]


def _dense(inputs: tf.Tensor, layers: list) -> tf.Tensor:
    """[inputs @ W_1 + b_1, inputs @ W_2 + b_2, ...] of Dense layers (no activation) as one matrix product."""
    kernel = keras.ops.concatenate([layer.kernel for layer in layers], axis=-1)
    bias = keras.ops.concatenate([layer.bias for layer in layers], axis=-1)
    return keras.ops.matmul(inputs, kernel) + bias
