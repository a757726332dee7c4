"""Multi-gate mixture-of-experts backbone (Ma et al., KDD 2018, https://doi.org/10.1145/3219819.3220007)."""

import keras
import tensorflow as tf

from tfcvr.layers.dropout import repeat_rows
from tfcvr.layers.mlp import MLP


@keras.saving.register_keras_serializable(package="tfcvr")
class MMoE(keras.layers.Layer):
    """Task k reads f_k(x) = sum_e softmax(W_k x)_e * expert_e(x).

    Args:
      num_tasks: number of gates, one per task representation.
      num_experts: number of expert MLPs.
      expert_units: widths of each expert MLP.
      dropout: dropout after each expert layer.

    Returns a list of `num_tasks` tensors [batch, expert_units[-1]].

    Example:
    >>> MMoE(num_tasks=2, num_experts=3, expert_units=(8,))(keras.ops.ones((4, 5)))[0].shape
    (4, 8)
    """

    def __init__(self, num_tasks, num_experts=4, expert_units=(128,), dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if num_tasks < 1:
            raise ValueError(f"`num_tasks` must be positive. Received: {num_tasks}")
        if num_experts < 1:
            raise ValueError(f"`num_experts` must be positive. Received: {num_experts}")
        if not expert_units:
            raise ValueError(f"`expert_units` must name at least one layer. Received: {expert_units}")
        self.num_tasks = num_tasks
        self.num_experts = num_experts
        self.expert_units = tuple(expert_units)
        self.dropout = dropout
        self.experts = [MLP(self.expert_units, dropout=dropout, name=f"expert_{e}") for e in range(num_experts)]
        self.gates = [keras.layers.Dense(num_experts, name=f"gate_{k}") for k in range(num_tasks)]

    def build(self, input_shape: tuple) -> None:
        for expert in self.experts:
            expert.build(input_shape)
        for gate in self.gates:
            gate.build(input_shape)

    def call(self, inputs: tf.Tensor, training: bool | None = None, passes: int = 1) -> list[tf.Tensor]:
        """`passes` > 1: Monte-Carlo dropout passes stacked pass-major (`MLP.call`); the gates have no dropout."""
        experts = stack_experts(self.experts, inputs, training, passes)
        return [mix_experts(repeat_rows(gate(inputs), passes), experts) for gate in self.gates]

    def compute_output_shape(self, input_shape: tuple) -> list[tuple]:
        return [tuple(input_shape[:-1]) + (self.expert_units[-1],)] * self.num_tasks

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_tasks": self.num_tasks,
            "num_experts": self.num_experts,
            "expert_units": list(self.expert_units),
            "dropout": self.dropout,
        }


def stack_experts(experts: list, inputs: tf.Tensor, training: bool | None, passes: int = 1) -> tf.Tensor:
    """Each expert on `inputs`, stacked: [batch, experts, width] ([passes · batch, ...] with `passes`)."""
    return keras.ops.stack([expert(inputs, training=training, passes=passes) for expert in experts], axis=1)


def mix_experts(gate_logits: tf.Tensor, experts: tf.Tensor) -> tf.Tensor:
    """softmax(gate logits) [batch, experts] times the experts [batch, experts, width] -> [batch, width].

    A broadcast product and a sum, not an einsum: on CPU oneDNN runs that
    einsum as one tiny matrix product per example, which is slower.
    """
    return keras.ops.sum(keras.ops.expand_dims(keras.ops.softmax(gate_logits, axis=-1), -1) * experts, axis=1)
