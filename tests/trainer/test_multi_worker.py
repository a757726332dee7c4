"""Real multi-process training on localhost: MultiWorkerMirroredStrategy (2 workers) and ParameterServerStrategy."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfcvr import models
from tfcvr.data import TFRecordPipeline, statistics


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _launch(cluster, tasks, args, tmp_path):
    """Starts one `trainer.task` process per (type, index); returns the Popen objects."""
    processes = []
    for task_type, index in tasks:
        env = {**os.environ, "PYTHONPATH": os.getcwd(),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}
        log = open(tmp_path / f"{task_type}-{index}.log", "w")
        processes.append(subprocess.Popen([sys.executable, "-m", "trainer.task", *args], env=env,
                                          stdout=log, stderr=subprocess.STDOUT))
    return processes


def _wait(processes, tmp_path, timeout=240):
    try:
        codes = [p.wait(timeout=timeout) for p in processes]
    finally:
        for p in processes:
            p.kill()
    logs = {name: (tmp_path / name).read_text() for name in os.listdir(tmp_path) if name.endswith(".log")}
    assert codes == [0] * len(processes), {name: log[-3000:] for name, log in logs.items()}
    return logs


def _restored_predictions(name, simulated, model_dir, features):
    """The final checkpoint restored into a fresh model, scored locally."""
    schema = simulated["schema_obj"]
    stats = statistics.numeric_statistics(TFRecordPipeline(simulated["train"], schema, 256).dataset(), schema)
    model = models.build(name, schema, embedding_dim=4, hidden_units=[16], tower_units=[8, 4],
                         numeric_statistics=stats)
    checkpoint = tf.train.Checkpoint(weights=model.weights_by_path())
    checkpoint.restore(tf.train.latest_checkpoint(str(model_dir / "checkpoints"))).expect_partial().assert_existing_objects_matched()
    return model(features, training=False)


@pytest.mark.parametrize("name", ["esmm", "ukd"])
def test_two_worker_multi_worker_mirrored(name, simulated, tmp_path):
    model_dir = tmp_path / "run"
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    args = [f"--model={name}", f"--train_files={simulated['train']}", f"--eval_files={simulated['eval']}",
            f"--schema={simulated['schema']}", f"--model_dir={model_dir}", "--batch_size=256", "--embedding_dim=4",
            "--hidden_units=16", "--tower_units=8,4", "--log_every=2"]
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
    records = tf.stack(list(tf.data.TFRecordDataset(tf.io.gfile.glob(simulated["eval"])).take(64)))
    served = tf.saved_model.load(str(model_dir / "export" / versions[0])).signatures["serving_default"](
        examples=records)
    (features, _), = list(TFRecordPipeline(simulated["eval"], simulated["schema_obj"], 64).dataset().take(1))
    expected = _restored_predictions(name, simulated, model_dir, features)
    np.testing.assert_allclose(served["cvr"].numpy(), expected["cvr"].numpy(), rtol=1e-5, atol=1e-6)
