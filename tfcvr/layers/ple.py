"""Progressive Layered Extraction backbone (Tang et al., RecSys 2020, https://doi.org/10.1145/3383313.3412236)."""

import keras
import tensorflow as tf

from tfcvr.layers.dropout import repeat_rows
from tfcvr.layers.mlp import MLP
from tfcvr.layers.mmoe import mix_experts, stack_experts


@keras.saving.register_keras_serializable(package="tfcvr")
class PLE(keras.layers.Layer):
    """Task-specific and shared experts in stacked extraction layers, a gate per task (and a shared gate below the top).

    Extraction layer j (1..N) holds `task_experts` experts E_{k,i}^j of each
    task k and `shared_experts` shared experts E_{s,i}^j, each an MLP of
    `expert_units`. Task k's gate mixes its own and the shared experts
    (Customized Gate Control, the paper's g^k(x) = w^k(x) S^k(x)):

      S^{k,j} = [E_{k,1}^j(x^{k,j-1}), ..., E_{k,m_k}^j(x^{k,j-1}), E_{s,1}^j(x^{s,j-1}), ..., E_{s,m_s}^j(x^{s,j-1})]
      x^{k,j} = softmax(W_k^j x^{k,j-1}) S^{k,j}

    and, in every layer but the last, the shared gate mixes all the layer's
    experts, every task's and the shared ones, into the next layer's shared input:

      x^{s,j} = softmax(W_s^j x^{s,j-1}) [E_{1,*}^j(x^{1,j-1}), ..., E_{K,*}^j(x^{K,j-1}), E_{s,*}^j(x^{s,j-1})]

    with x^{k,0} = x^{s,0} = the input. A method with more heads than CTR and
    CVR (DDPO's) gets a task, its experts and its gate, per head.

    Args:
      num_tasks: K, the task representations returned (one gate each).
      num_levels: N, extraction layers stacked (1 is the paper's single-layer CGC).
      task_experts: experts of each task per layer (the paper's m_k).
      shared_experts: shared experts per layer (m_s).
      expert_units: widths of each expert MLP; the next layer reads width expert_units[-1].
      dropout: dropout after each expert layer.

    Returns a list of K tensors [batch, expert_units[-1]]: x^{1,N}, ..., x^{K,N}.

    Example:
    >>> [t.shape for t in PLE(num_tasks=2, expert_units=(8,))(keras.ops.ones((4, 5)))]
    [(4, 8), (4, 8)]
    """

    def __init__(
        self, num_tasks, num_levels=2, task_experts=1, shared_experts=1, expert_units=(128,), dropout=0.0, **kwargs
    ):
        super().__init__(**kwargs)
        for argument, value in (
            ("num_tasks", num_tasks),
            ("num_levels", num_levels),
            ("task_experts", task_experts),
            ("shared_experts", shared_experts),
        ):
            if value < 1:
                raise ValueError(f"`{argument}` must be positive. Received: {value}")
        if not expert_units:
            raise ValueError(f"`expert_units` must name at least one layer. Received: {expert_units}")
        self.num_tasks = num_tasks
        self.num_levels = num_levels
        self.task_experts = task_experts
        self.shared_experts = shared_experts
        self.expert_units = tuple(expert_units)
        self.dropout = dropout
        # experts[j][k]: task k's experts of layer j; experts[j][num_tasks]: the shared experts.
        self.experts = [
            [
                [
                    MLP(self.expert_units, dropout=dropout, name=f"level_{j}_{_owner(k, num_tasks)}_expert_{i}")
                    for i in range(shared_experts if k == num_tasks else task_experts)
                ]
                for k in range(num_tasks + 1)
            ]
            for j in range(num_levels)
        ]
        # gates[j][k]: task k's gate of layer j over its own and the shared experts; gates[j][num_tasks]: the
        # shared gate over all of the layer's experts, in every layer but the last (nothing reads it there).
        self.gates = [
            [
                keras.layers.Dense(task_experts + shared_experts, name=f"level_{j}_{_owner(k, num_tasks)}_gate")
                for k in range(num_tasks)
            ]
            + (
                [keras.layers.Dense(num_tasks * task_experts + shared_experts, name=f"level_{j}_shared_gate")]
                if j < num_levels - 1
                else []
            )
            for j in range(num_levels)
        ]

    def build(self, input_shape: tuple) -> None:
        width = input_shape
        for level in range(self.num_levels):
            for owner in self.experts[level]:
                for expert in owner:
                    expert.build(width)
            for gate in self.gates[level]:
                gate.build(width)
            width = tuple(input_shape[:-1]) + (self.expert_units[-1],)

    def call(self, inputs: tf.Tensor, training: bool | None = None, passes: int = 1) -> list[tf.Tensor]:
        """`passes` > 1: Monte-Carlo dropout passes stacked pass-major (`MLP.call`): the first layer's experts
        make the copies at their first dropout and its gates' outputs are repeated; the layers above read the
        copies."""
        task_inputs, shared_input = [inputs] * self.num_tasks, inputs
        for level in range(self.num_levels):
            experts, gates = self.experts[level], self.gates[level]
            repeat = passes if level == 0 else 1

            def gate(index: int, gate_input: tf.Tensor, repeat=repeat, gates=gates) -> tf.Tensor:
                return repeat_rows(gates[index](gate_input), repeat)

            # [batch, experts, width] per owner: each task's experts read that task's input, the shared ones the shared.
            task_outputs = [stack_experts(experts[k], task_inputs[k], training, repeat) for k in range(self.num_tasks)]
            shared_outputs = stack_experts(experts[self.num_tasks], shared_input, training, repeat)
            next_inputs = [
                mix_experts(gate(k, task_inputs[k]), keras.ops.concatenate([task_outputs[k], shared_outputs], axis=1))
                for k in range(self.num_tasks)
            ]
            if level < self.num_levels - 1:
                every = keras.ops.concatenate([*task_outputs, shared_outputs], axis=1)
                shared_input = mix_experts(gate(self.num_tasks, shared_input), every)
            task_inputs = next_inputs
        return task_inputs

    def compute_output_shape(self, input_shape: tuple) -> list[tuple]:
        return [tuple(input_shape[:-1]) + (self.expert_units[-1],)] * self.num_tasks

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_tasks": self.num_tasks,
            "num_levels": self.num_levels,
            "task_experts": self.task_experts,
            "shared_experts": self.shared_experts,
            "expert_units": list(self.expert_units),
            "dropout": self.dropout,
        }


def _owner(k: int, num_tasks: int) -> str:
    return "shared" if k == num_tasks else f"task_{k}"
