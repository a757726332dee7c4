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
        tokens = keras.ops.stack([propensity_feature, cvr_feature], axis=1)  # [batch, 2, d]
        query = self.query(cvr_feature)  # [batch, d]
        # Contractions as broadcast products and sums: einsum runs them as thousands of 2-token matrix products
        # on CPU (oneDNN), most of DDPO's step time.
        scores = keras.ops.sum(keras.ops.expand_dims(query, 1) * self.key(tokens), axis=-1)  # [batch, 2]
        weights = keras.ops.softmax(scores / float(self.width) ** 0.5, axis=-1)  # Eq. 13
        return keras.ops.sum(keras.ops.expand_dims(weights, -1) * self.value(tokens), axis=1)  # Eq. 12

    def compute_output_shape(self, input_shape: list[tuple]) -> tuple:
        return input_shape[1]
