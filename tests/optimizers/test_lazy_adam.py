"""LazyAdam: the same training as Adam where the lazy convention cannot differ, row-wise updates elsewhere."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, tiny_features
from tfcvr import models
from tfcvr.optimizers import Adam, LazyAdam, make_optimizer


def _table_and_gradient(optimizer, ids, steps=1, initial=None):
    table = keras.Variable(initial if initial is not None else np.arange(12, dtype="float32").reshape(6, 2))
    optimizer.build([table])
    for _ in range(steps):
        with tf.GradientTape() as tape:
            rows = tf.gather(table.value, ids)
            loss = tf.reduce_sum(rows * tf.constant([[1.0, -2.0]]))
        gradient = tape.gradient(loss, table.value)
        optimizer.apply([gradient], [table])
    return table, gradient


def test_sparse_step_equals_dense_adam_with_duplicate_ids():
    ids = tf.constant([1, 3, 1])
    lazy, gradient = _table_and_gradient(LazyAdam(0.1), ids, steps=3)
    assert isinstance(gradient, tf.IndexedSlices)
    dense = keras.Variable(np.arange(12, dtype="float32").reshape(6, 2))
    adam = keras.optimizers.Adam(0.1)
    adam.build([dense])
    for _ in range(3):
        adam.apply([tf.convert_to_tensor(gradient)], [dense])
    # Only rows 1 and 3 ever had a gradient: lazy and dense Adam agree everywhere.
    np.testing.assert_array_equal(lazy.numpy(), dense.numpy())  # the same float32 arithmetic
    assert not np.allclose(lazy.numpy()[1], [2.0, 3.0])  # row 1 moved


def test_rows_not_looked_up_keep_value_and_moments():
    optimizer = LazyAdam(0.1)
    table, _ = _table_and_gradient(optimizer, tf.constant([1, 3]))
    before = table.numpy().copy()
    moments = optimizer._momentums[0].numpy().copy()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(table.value, tf.constant([2])))
    optimizer.apply([tape.gradient(loss, table.value)], [table])
    after = table.numpy()
    np.testing.assert_array_equal(after[[1, 3]], before[[1, 3]])  # dense Adam would move them by momentum
    np.testing.assert_array_equal(optimizer._momentums[0].numpy()[[1, 3]], moments[[1, 3]])
    assert not np.allclose(after[2], before[2])


def test_dense_gradients_are_adams():
    lazy, adam = LazyAdam(0.05), Adam(0.05)
    results = []
    for optimizer in (lazy, adam):
        weight = keras.Variable(np.ones((3,), "float32"))
        optimizer.build([weight])
        for _ in range(4):
            optimizer.apply([tf.constant([0.5, -1.0, 2.0])], [weight])
        results.append(weight.numpy())
    np.testing.assert_array_equal(results[0], results[1])  # the same fused update
    with pytest.raises(ValueError, match="amsgrad"):
        LazyAdam(amsgrad=True)
    with pytest.raises(ValueError, match="Unknown optimizer 'sgd'"):
        make_optimizer("sgd", 0.1)


@pytest.mark.parametrize("name", ["esmm", "escm2_dr", "ddpo", "dr_jl"])
def test_same_loss_trajectory_as_adam_on_a_fixed_batch(name):
    """Speed does not change results: on a fixed batch every touched row is in every step."""
    features = tiny_features(batch_size=8)
    labels = {
        "click": tf.constant([1, 1, 0, 0, 1, 0, 1, 0], tf.int64),
        "conversion": tf.constant([1, 0, 0, 0, 1, 0, 0, 0], tf.int64),
    }
    trajectories = []
    for optimizer in ("adam", "lazy_adam"):
        keras.utils.set_random_seed(7)
        model = models.build(name, TINY_SCHEMA, embedding_dim=4, hidden_units=(8,), tower_units=(4,))
        model.compile(optimizer=make_optimizer(optimizer, 1e-2, schedule="constant"))
        step = tf.function(model.train_step)
        trajectories.append([float(step((features, labels))["loss"]) for _ in range(6)])
    np.testing.assert_allclose(trajectories[1], trajectories[0], rtol=1e-5, atol=1e-6)
    assert trajectories[0][-1] != trajectories[0][0]  # it trained
