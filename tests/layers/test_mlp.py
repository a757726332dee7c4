import keras
import numpy as np
import pytest

from tests.conftest import dropout_passes_and_repeated_rows
from tfcvr.layers import MLP


def test_relu_stack_matches_hand_computation():
    layer = MLP(units=(2,))
    layer.build((None, 2))
    layer.dense_layers[0].set_weights([np.array([[1.0, -1.0], [2.0, 0.5]]), np.array([0.0, 0.1])])
    output = keras.ops.convert_to_numpy(layer(np.array([[1.0, 1.0], [-1.0, 0.0]], "float32")))
    np.testing.assert_allclose(output, [[3.0, 0.0], [0.0, 1.1]], rtol=1e-6)


def test_dropout_only_in_training_and_config_round_trip():
    layer = MLP(units=(64,), dropout=0.5)
    x = np.ones((4, 8), "float32")
    np.testing.assert_allclose(layer(x, training=False), layer(x, training=False))
    assert np.mean(keras.ops.convert_to_numpy(layer(x, training=True)) == 0) > 0.2
    assert MLP.from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(units=(0,)), "`units` must all be positive"), (dict(dropout=1.0), r"`dropout` must be in \[0, 1\)")],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [dict(units=(16, 8), dropout=0.5), dict(units=(16, 8), dropout=0.5, batch_norm=True), dict(units=(16,))],
)
def test_dropout_passes_are_the_stack_on_repeated_rows(kwargs):
    layer = MLP(**kwargs)
    x = keras.random.normal((5, 3), seed=1)
    passed, repeated = dropout_passes_and_repeated_rows(layer, x, 4)
    assert passed.shape == (20, kwargs["units"][-1])
    np.testing.assert_allclose(passed, repeated, rtol=1e-5, atol=1e-6)
    copies = keras.ops.convert_to_numpy(passed).reshape(4, 5, -1)
    # With dropout the passes are independent draws; without, the same rows.
    assert (not np.allclose(copies[0], copies[1])) == bool(kwargs.get("dropout"))


def test_dropout_passes_of_an_empty_stack_repeat_the_input_and_need_one_pass():
    layer = MLP(units=(), dropout=0.5)
    x = np.arange(6, dtype="float32").reshape(3, 2)
    np.testing.assert_array_equal(layer(x, training=True, passes=2), np.concatenate([x, x]))
    with pytest.raises(ValueError, match="`passes` must be at least 1. Received: 0"):
        MLP(units=(4,), dropout=0.5)(x, training=True, passes=0)
