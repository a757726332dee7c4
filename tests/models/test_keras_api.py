"""Every method keeps Keras' contract: `fit` trains as the command line's loop does (every optimizer, every
stage), `.keras` files round-trip without custom_objects, and a raw-feature model scores as the export."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, tiny_row
from tfcvr import export, layers, models
from tfcvr.data import schema as schema_lib
from trainer.loop import TrainingLoop

SCHEMA = schema_lib.Schema.from_dict(TINY_SCHEMA)


def _dataset(batches=3, batch_size=32, seed=0):
    """A fixed, unshuffled dataset of hashed features and labels (conversion only where clicked)."""
    rng = np.random.default_rng(seed)
    n = batches * batch_size
    click = (rng.uniform(size=n) < 0.4).astype(np.int64)
    features = {
        "user_id": rng.integers(0, 50, n).astype(np.int64),
        "item_cat": rng.integers(0, 20, n).astype(np.int64),
        "price": rng.normal(size=n).astype(np.float32),
    }
    labels = {"click": click, "conversion": click * (rng.uniform(size=n) < 0.5).astype(np.int64)}
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch_size)


def _model(name, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = models.build(name, SCHEMA, hidden_units=(8,), tower_units=(4, 2), **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


# UKD's steps draw random numbers (its student's dropout, the discriminator's sample of unclicked rows, the
# Monte-Carlo teacher's dropout); two differently traced graphs draw different ones, so the comparison with the
# loop turns those draws off. Every other method's step is deterministic at its defaults.
DETERMINISTIC_STEP = {
    name: {"student_dropout": 0.0, "discriminator_unclicked_ratio": None}
    | ({"teacher_dropout": 0.0} if name == "ukd_mc_dropout" else {})
    for name in ("ukd", "ukd_base", "ukd_mc_dropout")
}


# One case per class ("joint" is another name of naive).
METHODS = [n for n in models.names() if all(models.get(n) is not models.get(m) for m in models.names() if m < n)]


@pytest.mark.parametrize("name", METHODS)
def test_fit_trains_as_the_loop_and_the_model_round_trips_through_a_keras_file(name, tmp_path):
    fitted = _model(name, **DETERMINISTIC_STEP.get(name, {}))
    stepped = _model(name, **DETERMINISTIC_STEP.get(name, {}))
    for a, b in zip(fitted.weights, stepped.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    history = fitted.fit(_dataset(), epochs=1, verbose=0)
    # What the command line's loop runs (test_the_loop_runs_each_stages_step checks it): each stage's step on
    # every batch, stage after stage.
    terms = _step_through(stepped)
    stages = stepped.training_stages(1)
    # The same objective on the same batches with every optimizer: the same weights and optimizer states.
    for a, b in zip(fitted.weights, stepped.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    for a, b in zip(fitted.optimizers(), stepped.optimizers(), strict=True):
        assert int(a.iterations.numpy()) == int(b.iterations.numpy()) > 0
    # The loss terms of every stage are in the History (Keras: the last step's value), one entry per epoch.
    assert history.epoch == list(range(sum(stage_epochs for _, stage_epochs in stages)))
    assert set(terms) <= set(history.history) and all(np.isfinite(history.history[t][-1]) for t in terms)
    for stage, _ in stages[:-1]:
        assert f"{stage}/loss" in history.history

    # model.save / keras.models.load_model without custom_objects: the same predictions, compiled as it was.
    path = str(tmp_path / "model.keras")
    fitted.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(fitted) and loaded.get_config() == fitted.get_config()
    ((features, _),) = list(_dataset(batches=1, seed=1))
    expected, actual = fitted(features, training=False), loaded(features, training=False)
    for key in expected:
        np.testing.assert_allclose(actual[key].numpy(), expected[key].numpy(), rtol=0, atol=1e-6, err_msg=key)
    assert len(loaded.optimizers()) == len(fitted.optimizers())
    assert int(loaded.optimizer.iterations.numpy()) == int(fitted.optimizer.iterations.numpy())


def _step_through(model, epochs=1):
    """Each training stage's step on every batch of `_dataset()`, stage after stage; the last step's terms.

    Each stage's step is traced once as a `tf.function`, as `fit` and the loop run it: an eager step rounds
    differently from a graph (graph rewrites fuse a layer's matmul, bias and activation).
    """
    for stage, stage_epochs in model.training_stages(epochs):
        step = tf.function(model.stage_step(stage))
        for _ in range(stage_epochs):
            for batch in _dataset():
                terms = step(batch)
    return terms


@pytest.mark.parametrize("name", ["ukd", "dr_jl"])  # two stages; two optimizers in one step
def test_the_loop_runs_each_stages_step(name, tmp_path):
    looped = _model(name, **DETERMINISTIC_STEP.get(name, {}))
    stepped = _model(name, **DETERMINISTIC_STEP.get(name, {}))
    loop = TrainingLoop(looped, tf.distribute.get_strategy(), str(tmp_path / "ckpt"))
    loop.train(lambda context, epoch: _dataset(), epochs=1, global_batch_size=32)
    _step_through(stepped)
    for a, b in zip(looped.weights, stepped.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_a_staged_fit_numbers_epochs_across_stages_and_refuses_what_it_cannot_do():
    model = _model("ukd")
    seen = []
    callback = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    history = model.fit(_dataset(), epochs=2, callbacks=[callback], verbose=0)
    assert seen == [0, 1, 2] and model.history is history  # teacher epoch 0, student epochs 1-2
    assert np.isnan(history.history["loss"][0]) and np.isfinite(history.history["teacher/loss"][0])
    for kwargs in ({"initial_epoch": 1}, {"callbacks": [keras.callbacks.BackupAndRestore("unused")]}):
        with pytest.raises(ValueError, match="cannot say which stage to resume"):
            model.fit(_dataset(), epochs=2, verbose=0, **kwargs)
    with pytest.raises(ValueError, match="iterator would be used up"):
        model.fit(iter(_dataset()), epochs=1, verbose=0)


@pytest.mark.parametrize(
    "strategy", [tf.distribute.MultiWorkerMirroredStrategy, tf.distribute.experimental.ParameterServerStrategy]
)
def test_fit_refuses_multi_worker_strategies(strategy):
    model = _model("esmm")
    model._distribute_strategy = object.__new__(strategy)  # as if built in its scope (only its type matters)
    with pytest.raises(ValueError, match="trainer.loop.TrainingLoop"):
        model.fit(_dataset(), epochs=1, verbose=0)


def test_layers_round_trip_without_custom_objects():
    for layer in (
        layers.FeatureEmbedding({"a": 10}, embedding_dim=4, lists=[], numeric=["n"], numeric_mean=[1.0]),
        layers.MLP([4, 2], dropout=0.1),
        layers.SharedBottom(num_tasks=2, units=[4]),
        layers.MMoE(num_tasks=2, num_experts=3, expert_units=[4]),
        layers.GradientReversal(0.5),
        layers.VariationalInformation(initial_rho=3.0),
        layers.CausalTransfer(),
        layers.SchemaTransform(SCHEMA),
    ):
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(restored) is type(layer) and restored.get_config() == layer.get_config()


def test_the_raw_feature_model_scores_as_the_export(tmp_path):
    model = _model("esmm")
    model.fit(_dataset(), epochs=1, verbose=0)
    raw = model.raw_feature_model()
    rows = [tiny_row(user_id=i * 7919 - 3, item_cat=f"c{i}", price=float(i) / 3) for i in range(6)]
    features = {
        f.name: np.array([r[f.name] for r in rows], dtype=object if f.tf_dtype == tf.string else None)
        for f in SCHEMA.features
    }
    scores = raw.predict(features, verbose=0)
    served = tf.saved_model.load(export.export_for_serving(model, SCHEMA, str(tmp_path / "export"))).signatures[
        "predict"
    ](**{f.name: tf.constant(features[f.name].tolist(), f.tf_dtype) for f in SCHEMA.features})
    for key in ("ctr", "cvr", "ctcvr"):
        np.testing.assert_allclose(scores[key], served[key].numpy(), rtol=1e-6, atol=1e-7)
    path = os.path.join(tmp_path, "raw.keras")
    raw.save(path)
    np.testing.assert_allclose(keras.models.load_model(path).predict(features, verbose=0)["cvr"], scores["cvr"])
