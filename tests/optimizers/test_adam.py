"""tfcvr's fused Adam: Keras' arithmetic on dense gradients, the summed gradient on embedding lookups."""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA
from tfcvr import models
from tfcvr.optimizers import Adam, make_optimizer
from tfcvr.optimizers.adam import has_handle

LEARNING_RATE = 0.1
REPO = Path(__file__).resolve().parents[2]


def _train(optimizer, gradients, initial):
    weight = keras.Variable(np.array(initial, dtype="float32"), name="weight")
    optimizer.build([weight])
    for gradient in gradients:
        optimizer.apply([gradient], [weight])
    return weight.numpy(), optimizer


def test_dense_gradients_follow_keras_adam():
    rng = np.random.default_rng(0)
    initial = rng.normal(size=(4, 3))
    gradients = [tf.constant(rng.normal(size=(4, 3)), tf.float32) for _ in range(6)]
    ours, optimizer = _train(Adam(LEARNING_RATE), gradients, initial)
    theirs, reference = _train(keras.optimizers.Adam(LEARNING_RATE), gradients, initial)
    # Within float32 rounding: 1e-5 is 1e-4 of one step (lr 0.1); the kernel evaluates the same formula vectorised.
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    np.testing.assert_allclose(optimizer.variables[2].numpy(), reference.variables[2].numpy(), rtol=1e-5)  # m
    assert int(optimizer.iterations) == 6
    assert not np.allclose(ours, initial)


def _first_step(gradient, squared_gradient, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Adam's first update by hand: m = (1−β₁)·g, v = (1−β₂)·g², θ −= lr·√(1−β₂)/(1−β₁) · m / (√v + ε)."""
    m, v = (1 - beta_1) * gradient, (1 - beta_2) * squared_gradient
    return -LEARNING_RATE * np.sqrt(1 - beta_2) / (1 - beta_1) * m / (np.sqrt(v) + epsilon)


def test_a_row_looked_up_twice_gets_the_step_of_its_summed_gradient():
    table = np.zeros((3, 1), "float32")
    slices = tf.IndexedSlices(tf.constant([[0.5], [0.5]]), tf.constant([1, 1]), tf.constant([3, 1]))
    ours, _ = _train(Adam(LEARNING_RATE), [slices], table)
    np.testing.assert_allclose(ours[:, 0], [0.0, _first_step(1.0, 1.0**2), 0.0], rtol=1e-5)  # g = 0.5 + 0.5
    # Keras' Adam squares each slice before adding duplicates: v from 0.5² + 0.5², a √2 larger step.
    theirs, _ = _train(keras.optimizers.Adam(LEARNING_RATE), [slices], table)
    np.testing.assert_allclose(theirs[:, 0], [0.0, _first_step(1.0, 0.5**2 + 0.5**2), 0.0], rtol=1e-5)
    assert theirs[1, 0] == pytest.approx(np.sqrt(2.0) * ours[1, 0], rel=1e-4)
    # Ours is Keras' Adam on the dense gradient.
    dense, _ = _train(keras.optimizers.Adam(LEARNING_RATE), [tf.convert_to_tensor(slices)], table)
    np.testing.assert_allclose(ours, dense, rtol=1e-5)


def test_rows_outside_the_batch_keep_moving_by_their_momentum():
    first = tf.IndexedSlices(tf.constant([[1.0]]), tf.constant([0]), tf.constant([2, 1]))
    second = tf.IndexedSlices(tf.constant([[1.0]]), tf.constant([1]), tf.constant([2, 1]))
    after_one, _ = _train(Adam(LEARNING_RATE), [first], np.zeros((2, 1)))
    after_two, _ = _train(Adam(LEARNING_RATE), [first, second], np.zeros((2, 1)))
    assert after_two[0, 0] < after_one[0, 0] < 0  # row 0 moved again without a gradient: dense Adam


def test_amsgrad_is_keras_update_and_variables_are_keras_adams():
    gradients = [tf.constant([1.0, -2.0]), tf.constant([0.1, 0.3]), tf.constant([-1.0, 0.5])]
    ours, optimizer = _train(Adam(LEARNING_RATE, amsgrad=True), gradients, [0.0, 0.0])
    theirs, reference = _train(keras.optimizers.Adam(LEARNING_RATE, amsgrad=True), gradients, [0.0, 0.0])
    np.testing.assert_array_equal(ours, theirs)
    # Same variables under the same paths: checkpoints written with Keras' Adam restore into it.
    # (Keras numbers the optimizers' names, adam_6 and adam_7: the paths below them must match.)
    assert [v.path.split("/", 1)[1] for v in optimizer.variables] == [
        v.path.split("/", 1)[1] for v in reference.variables
    ]
    assert [v.name for v in optimizer.variables] == [v.name for v in reference.variables]


def test_factory_compile_and_config_give_the_fused_adam():
    assert type(make_optimizer("adam", 1e-3, schedule="constant")) is Adam
    model = models.build("esmm", TINY_SCHEMA, embedding_dim=4, hidden_units=(8,), tower_units=(4,))
    model.compile()
    assert type(model.optimizer) is Adam
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(Adam(0.01)))
    assert type(restored) is Adam and restored.get_config()["learning_rate"] == pytest.approx(0.01)


MIRRORED = """
import keras, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfcvr.optimizers import Adam

def train(strategy, ids_per_replica):
    replicas = len(ids_per_replica)
    with strategy.scope():
        weight = keras.Variable(np.arange(8, dtype="float32").reshape(4, 2))
        optimizer = Adam(0.1)
        optimizer.build([weight])

    @tf.function
    def step(ids):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(weight.value, ids) * [1.0, -2.0]) / replicas
        optimizer.apply([tape.gradient(loss, weight.value)], [weight])

    ids = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(ids_per_replica[context.replica_id_in_sync_group])
    )
    for _ in range(3):
        strategy.run(step, args=(ids,))
    return weight

mirrored = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), [[1, 1], [3, 3]])
single = train(tf.distribute.OneDeviceStrategy("/cpu:0"), [[1, 3]])
copies = [v.numpy() for v in mirrored.value.values]
assert len(copies) == 2
# Replica 0 looks up row 1 twice, replica 1 row 3 twice, each loss halved: the all-reduced gradient is the
# single device's on ids [1, 3], and each replica's fused update must write its own copy.
for copy in copies:
    np.testing.assert_allclose(copy, single.numpy(), rtol=1e-6)
assert not np.allclose(copies[0], np.arange(8).reshape(4, 2))
print("OK")
"""


def test_mirrored_replicas_update_their_own_copies(tmp_path):
    """Under MirroredStrategy each replica's fused update writes its own copy; the copies stay equal."""
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


def test_a_variable_split_across_parameter_servers_takes_keras_update():
    from tensorflow.python.distribute.sharded_variable import ShardedVariable  # what a split table becomes

    sharded = ShardedVariable([tf.Variable(tf.zeros((2, 3))), tf.Variable(tf.zeros((2, 3)))])
    assert not has_handle(sharded)  # no single handle for the fused kernel
    assert has_handle(tf.Variable(1.0)) and has_handle(keras.Variable(1.0))
