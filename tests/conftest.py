"""Shared fixtures: a tiny schema, TFRecord writing, and a small simulated log."""

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcvr.data import example_writer, simulate  # noqa: E402
from tfcvr.data import schema as schema_lib  # noqa: E402


def pytest_configure(config):
    # The fast tier (`python -m pytest -n 2 -m "not slow" tests`) leaves out the tests marked slow: end-to-end runs
    # of the command lines, every method trained to a quality bar, multi-process clusters.
    config.addinivalue_line("markers", "slow: takes many seconds (a subprocess run, training to a bar, a cluster)")


TINY_SCHEMA = {
    "features": [
        {"name": "user_id", "type": "categorical", "dtype": "int64", "num_buckets": 50},
        {"name": "item_cat", "type": "categorical", "dtype": "string", "num_buckets": 20},
        {"name": "price", "type": "numeric"},
    ],
    "labels": {"click": "click", "conversion": "conversion"},
    "group_key": "user_id",
}


def tiny_row(**overrides):
    row = {"user_id": 7, "item_cat": "shoes", "price": 3.5, "click": 1, "conversion": 0}
    row.update(overrides)
    return {k: v for k, v in row.items() if v is not None}


def write_rows(path, rows):
    """Writes dict rows (None values omitted) as one TFRecord file; returns the path."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in rows:
            writer.write(example_writer.to_example(row).SerializeToString())
    return str(path)


@pytest.fixture
def tiny_schema():
    return schema_lib.Schema.from_dict(TINY_SCHEMA)


@pytest.fixture(scope="session")
def simulated(tmp_path_factory):
    """A 3,000-impression simulated log: {"train", "eval", "schema"} paths and the Schema."""
    out = tmp_path_factory.mktemp("simulated")
    paths = simulate.write_simulation(str(out), 3000, seed=3, num_shards=2)
    return {**paths, "schema_obj": schema_lib.load_schema(paths["schema"])}


def tiny_features(batch_size=4):
    """Model inputs (already hashed) for TINY_SCHEMA."""
    return {
        "user_id": tf.constant([i % 50 for i in range(batch_size)], tf.int64),
        "item_cat": tf.constant([(3 * i) % 20 for i in range(batch_size)], tf.int64),
        "price": tf.constant([float(i) for i in range(batch_size)], tf.float32),
    }


def variables_named(model, part):
    """Trainable variables whose path contains `part` (e.g. "cvr_head")."""
    return [v for v in model.trainable_variables if part in v.path]


# A 4-impression batch for hand-computed objectives: two clicks, one conversion.
HAND_LABELS = {"click": tf.constant([1, 1, 0, 0], tf.int64), "conversion": tf.constant([1, 0, 0, 0], tf.int64)}
HAND_CTR = [0.5, 0.8, 0.2, 0.1]
HAND_CVR = [0.6, 0.3, 0.9, 0.5]
# Per-row log losses by hand.
HAND_CTR_LOSS = (-math.log(0.5) - math.log(0.8) - math.log(0.8) - math.log(0.9)) / 4
HAND_CVR_ERRORS = [-math.log(0.6), -math.log(0.7), -math.log(0.1), -math.log(0.5)]


def hand_predictions(**extra):
    """ctr, cvr, ctcvr = ctr*cvr and propensity = ctr for the hand batch, plus `extra`."""
    predictions = {
        "ctr": tf.constant(HAND_CTR),
        "cvr": tf.constant(HAND_CVR),
        "ctcvr": tf.constant([a * b for a, b in zip(HAND_CTR, HAND_CVR)]),
        "propensity": tf.constant(HAND_CTR),
    }
    predictions.update({k: tf.constant(v, tf.float32) for k, v in extra.items()})
    return predictions


def small_model(name, hidden_units=(4,), tower_units=(2,), **kwargs):
    """A compiled tiny model of TINY_SCHEMA with built optimizers."""
    import keras

    from tfcvr import models

    model = models.build(name, TINY_SCHEMA, hidden_units=hidden_units, tower_units=tower_units, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def exported_esmm(schema, base, version, seed, train_files=None):
    """A tiny esmm, trained one epoch when `train_files` are given (untrained scores nearly tie)."""
    import keras

    from tfcvr import export, models
    from tfcvr.data import TFRecordPipeline, statistics

    keras.utils.set_random_seed(seed)
    numeric = (
        statistics.numeric_statistics(TFRecordPipeline(train_files, schema, 512).dataset(), schema)
        if train_files
        else None
    )
    model = models.build(
        "esmm", schema, embedding_dim=4, hidden_units=(8,), tower_units=(4,), numeric_statistics=numeric
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    if train_files:
        for batch in TFRecordPipeline(train_files, schema, 256, shuffle=True, seed=seed).dataset():
            model.train_step(batch)
    return model, export.export_for_serving(model, schema, base, version=version)


def corrupt_copy(source, destination, record):
    """A copy of TFRecord file `source` whose record `record` has a damaged data byte; the records it holds."""
    data = bytearray(open(source, "rb").read())
    offset, count = 0, 0
    while offset < len(data):
        if count == record:
            data[offset + 12] ^= 0xFF  # the first data byte: the record's data checksum no longer matches
        offset += int.from_bytes(data[offset : offset + 8], "little") + 16
        count += 1
    assert record < count, f"{source} holds {count} records"
    open(destination, "wb").write(bytes(data))
    return count


def dropout_passes_and_repeated_rows(layer, inputs, passes):
    """`layer(inputs, passes=passes)` and `layer` on `inputs` repeated `passes` times, from the same dropout seeds.

    Every seed generator's state is restored between the two calls, so both draw the same masks: equal outputs
    mean the passes are the repeated rows' stack, pass-major, whatever the layer computes only once.
    """
    states = [v for v in layer.variables if "seed_generator" in v.path]
    saved = [v.numpy() for v in states]
    passed = layer(inputs, training=True, passes=passes)
    for variable, value in zip(states, saved):
        variable.assign(value)
    repeated = layer(tf.tile(inputs, [passes, 1]), training=True)
    return passed, repeated
