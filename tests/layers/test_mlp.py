import keras
import numpy as np
import pytest

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
