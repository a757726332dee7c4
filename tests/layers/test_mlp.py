import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcvr.layers import MLP
from tfcvr.layers.mlp import dense_side_by_side, parallel_mlps


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


def test_parallel_mlps_equal_each_mlp_stacked_and_train_every_kernel():
    rng = np.random.default_rng(0)
    mlps = [MLP((6, 4), name=f"expert_{e}") for e in range(3)]
    inputs = tf.constant(rng.normal(size=(5, 7)), tf.float32)
    for mlp in mlps:
        mlp.build((None, 7))
        mlp.set_weights([rng.normal(size=w.shape).astype("float32") for w in mlp.get_weights()])
    expected = np.stack([mlp(inputs).numpy() for mlp in mlps], axis=1)
    with tf.GradientTape() as tape:
        together = parallel_mlps(mlps, inputs)
        loss = tf.reduce_sum(together**2)
    assert together.shape == (5, 3, 4)
    np.testing.assert_allclose(together.numpy(), expected, rtol=1e-5, atol=1e-5)
    variables = [v for mlp in mlps for v in mlp.trainable_variables]
    gradients = tape.gradient(loss, variables)
    assert len(variables) == 12 and all(g is not None and np.any(g.numpy() != 0) for g in gradients)
    assert dense_side_by_side(inputs, [m.dense_layers[0] for m in mlps]).shape == (5, 18)


def test_parallel_mlps_drop_out_in_training_and_run_unlike_mlps_one_by_one():
    mlps = [MLP((64, 32), dropout=0.5, name=f"expert_{e}") for e in range(2)]
    inputs = tf.ones((256, 8))
    for mlp in mlps:
        mlp.build((None, 8))
    np.testing.assert_allclose(
        parallel_mlps(mlps, inputs, training=False).numpy(),
        np.stack([mlp(inputs).numpy() for mlp in mlps], axis=1),
        rtol=1e-5,
        atol=1e-6,
    )
    evaluated = parallel_mlps(mlps, inputs, training=False).numpy()
    dropped = parallel_mlps(mlps, inputs, training=True).numpy()
    # Identical rows in, different rows out: fresh masks per row and unit; half the units dropped adds zeros.
    assert not np.allclose(dropped[0], dropped[1])
    assert np.mean(dropped == 0) > np.mean(evaluated == 0) + 0.2
    # Unlike MLPs (here: dropout rates) run one by one.
    unlike = [MLP((4, 3), dropout=0.1, name="a"), MLP((4, 3), name="b")]
    stacked = parallel_mlps(unlike, inputs, training=False).numpy()
    np.testing.assert_allclose(stacked, np.stack([mlp(inputs).numpy() for mlp in unlike], axis=1), rtol=1e-6)
