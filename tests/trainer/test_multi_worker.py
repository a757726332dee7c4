"""Real multi-process training on localhost: MultiWorkerMirroredStrategy (2 workers) and ParameterServerStrategy."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfcvr import models
from tfcvr.data import TFRecordPipeline, statistics
from trainer import local_cluster, warm_start

# End-to-end: subprocesses, clusters or training to a bar; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow


def _launch(cluster, tasks, args, tmp_path):
    return local_cluster.launch_tasks(cluster, tasks, args, str(tmp_path), env={"PYTHONPATH": os.getcwd()})


def _wait(processes, tmp_path, timeout=240):
    try:
        codes = [p.wait(timeout=timeout) for p in processes]
    finally:
        for p in processes:
            p.kill()
    logs = {name: (tmp_path / name).read_text() for name in os.listdir(tmp_path) if name.endswith(".log")}
    assert codes == [0] * len(processes), {name: log[-3000:] for name, log in logs.items()}
    return logs


def _task_args(name, simulated, model_dir, *extra):
    """trainer.task arguments of a tiny `name` model on the simulated log."""
    return [
        f"--model={name}",
        f"--train_files={simulated['train']}",
        f"--eval_files={simulated['eval']}",
        f"--schema={simulated['schema']}",
        f"--model_dir={model_dir}",
        "--batch_size=256",
        "--embedding_dim=4",
        "--hidden_units=16",
        "--tower_units=8,4",
        *extra,
    ]


def _assert_export_matches_checkpoint(name, simulated, model_dir, version):
    """The chief's export scores like the final checkpoint restored into a fresh model."""
    records = tf.stack(list(tf.data.TFRecordDataset(tf.io.gfile.glob(simulated["eval"])).take(64)))
    served = tf.saved_model.load(str(model_dir / "export" / version)).signatures["serving_default"](examples=records)
    ((features, _),) = list(TFRecordPipeline(simulated["eval"], simulated["schema_obj"], 64).dataset().take(1))
    expected = _restored_predictions(name, simulated, model_dir, features)
    np.testing.assert_allclose(served["cvr"].numpy(), expected["cvr"].numpy(), rtol=1e-5, atol=1e-6)
    # The chief refitted the served pCTR intercept after training (the checkpoint holds the heads as trained).
    offset = json.loads((model_dir / "metrics.json").read_text())["refit_intercepts"]["ctr_offset"]
    ctr = expected["ctr"].numpy().astype(np.float64)
    refitted = 1 / (1 + np.exp(-(np.log(ctr) - np.log1p(-ctr) + offset)))
    np.testing.assert_allclose(served["ctr"].numpy(), refitted, rtol=1e-4, atol=1e-6)


def _model(name, simulated):
    """A fresh model configured as `_task_args` configures trainer.task's."""
    schema = simulated["schema_obj"]
    stats = statistics.numeric_statistics(TFRecordPipeline(simulated["train"], schema, 256).dataset(), schema)
    return models.build(name, schema, embedding_dim=4, hidden_units=[16], tower_units=[8, 4], numeric_statistics=stats)


def _restored_model(name, simulated, model_dir):
    """The final checkpoint restored into a fresh model."""
    model = _model(name, simulated)
    checkpoint = tf.train.Checkpoint(weights=model.weights_by_path())
    checkpoint.restore(
        tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    ).expect_partial().assert_existing_objects_matched()
    return model


def _restored_predictions(name, simulated, model_dir, features):
    """The final checkpoint restored into a fresh model, scored locally."""
    return _restored_model(name, simulated, model_dir)(features, training=False)


def _warm_start_source(name, simulated, tmp_path):
    """(trainer.task arguments, weights) of a checkpoint of another initialisation to warm-start from.

    The run trains at learning rate 0, so its final checkpoint must hold exactly the source's weights: every
    replica started from them, and no worker kept its own initialisation.
    """
    tf.keras.utils.set_random_seed(11)
    model = _model(name, simulated)
    prefix = tf.train.Checkpoint(weights=model.weights_by_path()).write(str(tmp_path / "source" / "ckpt"))
    weights = {path: variable.numpy() for path, variable in model.weights_by_path().items()}
    return [f"--warm_start_from={prefix}", "--learning_rate=0"], weights


def _assert_warm_started(name, simulated, model_dir, weights):
    report = json.loads((model_dir / "metrics.json").read_text())
    learned = [path for path in weights if not warm_start.is_refitted(path)]  # the served intercepts start at 0
    assert report["warm_start"]["restored"] == len(learned) and report["warm_start"]["initialized"] == []
    for path, variable in _restored_model(name, simulated, model_dir).weights_by_path().items():
        np.testing.assert_array_equal(variable.numpy(), weights[path], err_msg=path)


@pytest.mark.parametrize(
    "name,extra,warm",
    [
        ("esmm", [], True),
        ("ukd", [], False),
        ("esmm", ["--optimizer=lazy_adam"], False),
        ("esmm", ["--cache_input"], False),
        ("nise", [], False),  # a non-trainable model weight (its running loss means) assigned in the step
    ],
)
def test_two_worker_multi_worker_mirrored(name, extra, warm, simulated, tmp_path):
    model_dir = tmp_path / "run"
    ports = local_cluster.free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    warm_args, warm_weights = _warm_start_source(name, simulated, tmp_path) if warm else ([], None)
    args = _task_args(name, simulated, model_dir, "--log_every=2", *extra, *warm_args)
    logs = _wait(_launch(cluster, [("worker", 0), ("worker", 1)], args, tmp_path), tmp_path)
    for log in logs.values():
        assert "Strategy multi_worker_mirrored" in log and "2 replicas" in log
        assert "split across 2 workers by file" in log and "9 steps per epoch" in log
    # One export, from the chief (worker 0); the other worker's temporary folders are gone.
    versions = os.listdir(model_dir / "export")
    assert len(versions) == 1
    report = json.loads((model_dir / "metrics.json").read_text())
    stages = 2 if name == "ukd" else 1  # teacher and student epochs
    assert report["training"]["steps"] == 9 * stages  # 2,400 records // 256 per epoch (per stage)
    _assert_export_matches_checkpoint(name, simulated, model_dir, versions[0])
    if warm:
        _assert_warm_started(name, simulated, model_dir, warm_weights)


@pytest.mark.parametrize(
    "name,optimizer,warm",
    [
        ("esmm", "adam", True),
        ("ukd", "adam", False),
        ("dr_jl", "adam", False),
        ("esmm", "lazy_adam", False),
        ("nise", "adam", False),
    ],
)
def test_parameter_server_strategy(name, optimizer, warm, simulated, tmp_path):
    model_dir = tmp_path / "run"
    chief, worker, ps0, ps1 = local_cluster.free_ports(4)
    cluster = {
        "chief": [f"localhost:{chief}"],
        "worker": [f"localhost:{worker}"],
        "ps": [f"localhost:{ps0}", f"localhost:{ps1}"],
    }
    warm_args, warm_weights = _warm_start_source(name, simulated, tmp_path) if warm else ([], None)
    args = _task_args(
        name, simulated, model_dir, "--log_every=3", "--checkpoint_every=4", f"--optimizer={optimizer}", *warm_args
    )
    servers = _launch(cluster, [("worker", 0), ("ps", 0), ("ps", 1)], args, tmp_path)
    try:
        logs = _wait(_launch(cluster, [("chief", 0)], args, tmp_path), tmp_path)
    finally:
        for server in servers:
            server.kill()
    chief_log = logs["chief-0.log"]
    assert "Strategy parameter_server (ParameterServerStrategy" in chief_log
    report = json.loads((model_dir / "metrics.json").read_text())
    stages = 2 if name == "ukd" else 1  # teacher and student epochs
    assert report["training"]["steps"] == 9 * stages and 0.0 <= report["metrics"]["ctr_auc"] <= 1.0
    assert "starting the ps 1 server" in logs["ps-1.log"].lower()
    versions = os.listdir(model_dir / "export")
    _assert_export_matches_checkpoint(name, simulated, model_dir, versions[0])
    if warm:
        _assert_warm_started(name, simulated, model_dir, warm_weights)
