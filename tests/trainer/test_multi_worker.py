"""Real multi-process training on localhost: MultiWorkerMirroredStrategy (2 workers) and ParameterServerStrategy."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfcvr import models
from tfcvr.data import TFRecordPipeline, statistics
from trainer import local_cluster


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


def _restored_predictions(name, simulated, model_dir, features):
    """The final checkpoint restored into a fresh model, scored locally."""
    schema = simulated["schema_obj"]
    stats = statistics.numeric_statistics(TFRecordPipeline(simulated["train"], schema, 256).dataset(), schema)
    model = models.build(name, schema, embedding_dim=4, hidden_units=[16], tower_units=[8, 4], numeric_statistics=stats)
    checkpoint = tf.train.Checkpoint(weights=model.weights_by_path())
    checkpoint.restore(
        tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    ).expect_partial().assert_existing_objects_matched()
    return model(features, training=False)


@pytest.mark.parametrize(
    "name,extra", [("esmm", []), ("ukd", []), ("esmm", ["--optimizer=lazy_adam"]), ("esmm", ["--cache_input"])]
)
def test_two_worker_multi_worker_mirrored(name, extra, simulated, tmp_path):
    model_dir = tmp_path / "run"
    ports = local_cluster.free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    args = _task_args(name, simulated, model_dir, "--log_every=2", *extra)
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


@pytest.mark.parametrize(
    "name,optimizer", [("esmm", "adam"), ("ukd", "adam"), ("dr_jl", "adam"), ("esmm", "lazy_adam")]
)
def test_parameter_server_strategy(name, optimizer, simulated, tmp_path):
    model_dir = tmp_path / "run"
    chief, worker, ps0, ps1 = local_cluster.free_ports(4)
    cluster = {
        "chief": [f"localhost:{chief}"],
        "worker": [f"localhost:{worker}"],
        "ps": [f"localhost:{ps0}", f"localhost:{ps1}"],
    }
    args = _task_args(name, simulated, model_dir, "--log_every=3", "--checkpoint_every=4", f"--optimizer={optimizer}")
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
