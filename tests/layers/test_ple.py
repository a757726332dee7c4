"""PLE: each gate's softmax mixes the experts it should, computed by hand from the layer's own experts and gates."""

import keras
import numpy as np
import pytest

from tests.conftest import dropout_passes_and_repeated_rows
from tfcvr.layers import PLE, make_backbone


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _gate(dense, inputs):
    kernel, bias = (_numpy(w) for w in dense.weights)
    return _softmax(inputs @ kernel + bias)


def _mix(weights, experts):
    """sum_e weights[b, e] * experts[e][b] by hand."""
    return sum(weights[:, e : e + 1] * expert for e, expert in enumerate(experts))


def test_two_extraction_layers_gate_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5)).astype("float32")
    layer = PLE(num_tasks=2, num_levels=2, task_experts=2, shared_experts=1, expert_units=(4,))
    layer(x)  # builds it
    for gates in layer.gates:  # non-trivial gates: the weights start near a uniform mix
        for gate in gates:
            gate.kernel.assign(rng.normal(size=gate.kernel.shape).astype("float32"))
            gate.bias.assign(rng.normal(size=gate.bias.shape).astype("float32"))
    outputs = [_numpy(t) for t in layer(x)]

    def run(expert, inputs):
        return _numpy(expert(inputs))

    task_inputs, shared_input = [x, x], x
    for level in range(2):
        experts, gates = layer.experts[level], layer.gates[level]
        own = [[run(e, task_inputs[k]) for e in experts[k]] for k in range(2)]  # each task's experts read its input
        shared = [run(e, shared_input) for e in experts[2]]  # the shared experts read the shared input
        # Task k's gate: over its own 2 experts then the shared one, from its own input.
        new_inputs = [_mix(_gate(gates[k], task_inputs[k]), own[k] + shared) for k in range(2)]
        if level == 0:
            # The shared gate below the top: over every expert of the layer (task 0's, task 1's, shared), from the
            # shared input.
            assert gates[2].units == 5
            shared_input = _mix(_gate(gates[2], shared_input), own[0] + own[1] + shared)
        else:
            assert len(gates) == 2  # no shared gate in the last layer: nothing reads it
        task_inputs = new_inputs
    for k in range(2):
        np.testing.assert_allclose(outputs[k], task_inputs[k], rtol=1e-5, atol=1e-6)
    assert not np.allclose(outputs[0], outputs[1])  # each task its own mix


def test_one_layer_is_cgc_and_every_head_gets_a_gate():
    layer = PLE(num_tasks=4, num_levels=1, task_experts=1, shared_experts=3, expert_units=(8, 6))
    outputs = layer(np.ones((2, 5), "float32"))
    assert [tuple(t.shape) for t in outputs] == [(2, 6)] * 4
    assert [g.units for g in layer.gates[0]] == [4, 4, 4, 4]  # one own expert + three shared, per task
    assert layer.compute_output_shape((None, 5)) == [(None, 6)] * 4
    assert PLE.from_config(layer.get_config()).get_config() == layer.get_config()
    paths = [v.path for v in layer.weights]
    assert len(paths) == len(set(paths)) and all(p.startswith(layer.name + "/level_0_") for p in paths)


def test_made_by_name_with_the_architecture_arguments():
    layer = make_backbone("ple", 2, (4,), num_experts=3, extraction_levels=3, task_experts=2, layer_name="b")
    assert (layer.num_levels, layer.task_experts, layer.shared_experts, layer.name) == (3, 2, 3, "b")


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"num_levels": 0}, "`num_levels` must be positive"),
        ({"task_experts": 0}, "`task_experts` must be positive"),
        ({"shared_experts": 0}, "`shared_experts` must be positive"),
        ({"expert_units": ()}, "`expert_units` must name at least one layer"),
    ],
)
def test_invalid_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        PLE(num_tasks=2, **arguments)


def test_dropout_passes_are_the_layer_on_repeated_rows():
    layer = PLE(num_tasks=2, num_levels=2, task_experts=2, shared_experts=1, expert_units=(16, 8), dropout=0.3)
    x = keras.random.normal((5, 4), seed=3)
    passed, repeated = dropout_passes_and_repeated_rows(layer, x, 3)
    for task_passed, task_repeated in zip(passed, repeated):
        assert task_passed.shape == (15, 8)
        np.testing.assert_allclose(task_passed, task_repeated, rtol=1e-5, atol=1e-6)
