import keras
import numpy as np
import pytest

from tests.conftest import dropout_passes_and_repeated_rows
from tfcvr.layers import MMoE


def test_gated_mixture_matches_hand_computation():
    layer = MMoE(num_tasks=2, num_experts=2, expert_units=(1,))
    layer.build((None, 1))
    layer.experts[0].dense_layers[0].set_weights([np.array([[1.0]]), np.array([0.0])])  # relu(x)
    layer.experts[1].dense_layers[0].set_weights([np.array([[2.0]]), np.array([1.0])])  # relu(2x + 1)
    layer.gates[0].set_weights([np.zeros((1, 2)), np.array([0.0, 0.0])])  # 50/50
    layer.gates[1].set_weights([np.zeros((1, 2)), np.array([np.log(3.0), 0.0])])  # 75/25
    task0, task1 = (keras.ops.convert_to_numpy(t) for t in layer(np.array([[1.0]], "float32")))
    np.testing.assert_allclose(task0, [[0.5 * 1.0 + 0.5 * 3.0]], rtol=1e-6)
    np.testing.assert_allclose(task1, [[0.75 * 1.0 + 0.25 * 3.0]], rtol=1e-6)


def test_config_round_trip_and_shapes():
    layer = MMoE(num_tasks=3, num_experts=4, expert_units=(8, 6))
    outputs = layer(np.ones((5, 7), "float32"))
    assert [tuple(o.shape) for o in outputs] == [(5, 6)] * 3
    assert MMoE.from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_tasks=0), "`num_tasks` must be positive"),
        (dict(num_tasks=2, num_experts=0), "`num_experts` must be positive"),
        (dict(num_tasks=2, expert_units=()), "`expert_units` must name"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MMoE(**kwargs)


def test_dropout_passes_are_the_layer_on_repeated_rows():
    layer = MMoE(num_tasks=2, num_experts=3, expert_units=(16, 8), dropout=0.3)
    x = keras.random.normal((5, 4), seed=2)
    passed, repeated = dropout_passes_and_repeated_rows(layer, x, 3)
    for task_passed, task_repeated in zip(passed, repeated):
        assert task_passed.shape == (15, 8)
        np.testing.assert_allclose(task_passed, task_repeated, rtol=1e-5, atol=1e-6)
