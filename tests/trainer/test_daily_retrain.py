"""The production lifecycle end to end: train day 1, serve it, warm-start day 2 into the same export base, roll
forward without a restart, retire old versions, pin and roll back by label; a failed day leaves the served model."""

import json
import os
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import GrpcPredictionClient
from serving.local import ExportedModels, start_grpc_server
from tfcvr import atomic
from tfcvr.data import simulate
from tfcvr.export import model_config
from tfcvr.export.versions import existing_versions

# End-to-end: subprocesses, clusters or training to a bar; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow


def _task(day, model_dir, base, *extra):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run(_command(day, model_dir, base, *extra), capture_output=True, text=True, env=env, timeout=600)


def _start_task(day, model_dir, base, *extra):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    command = _command(day, model_dir, base, "--log_every=2", *extra)
    return subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)


def _command(day, model_dir, base, *extra):
    return [
        sys.executable,
        "-m",
        "trainer.task",
        "--model=esmm",
        f"--train_files={day['train']}",
        f"--eval_files={day['eval']}",
        f"--schema={day['schema']}",
        f"--model_dir={model_dir}",
        f"--export_base={base}",
        "--batch_size=256",
        "--embedding_dim=4",
        "--hidden_units=16",
        "--tower_units=8",
        *extra,
    ]


def _served(channel, client, records):
    """(version that answered, cvr scores) of a request through the gRPC API."""
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(client.request(records), timeout=30)
    return response.model_spec.version.value, tf.make_ndarray(response.outputs["cvr"])


def _direct(base, version, records):
    """The cvr scores of a version's SavedModel loaded on its own."""
    signature = tf.saved_model.load(os.path.join(base, str(version))).signatures["serving_default"]
    return signature(examples=tf.constant(records))["cvr"].numpy()


def _until(condition, seconds=30):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "the server did not get there in time"
        time.sleep(0.1)


def test_daily_retrain_rolls_forward_retires_and_rolls_back(tmp_path):
    # Three days of one world: the same users and items, fresh impressions each day.
    days = {d: simulate.write_simulation(str(tmp_path / f"data{d}"), 3000, num_shards=2, day=d) for d in (1, 2, 3)}
    base = str(tmp_path / "export")
    records = list(tf.data.TFRecordDataset(tf.io.gfile.glob(days[1]["eval"])).take(32).as_numpy_iterator())

    # Day 1: train from scratch and export version 1.
    day1 = _task(days[1], tmp_path / "day1", base)
    assert day1.returncode == 0, day1.stderr[-3000:]
    (v1,) = existing_versions(base)

    # Serve every version of the base, the "stable" label on day 1; the config file is polled.
    config_path = str(tmp_path / "models.config")
    atomic.write_file(
        config_path, model_config.model_config({"cvr": base}, labels={"cvr": {"stable": v1}}, all_versions=True)
    )
    exported = ExportedModels(
        file_system_poll_wait_seconds=0.2, model_config_file=config_path, model_config_file_poll_wait_seconds=0.2
    )
    server, port = start_grpc_server(exported)
    channel = grpc.insecure_channel(f"localhost:{port}")
    newest = GrpcPredictionClient(model_name="cvr", channel=channel)
    stable = GrpcPredictionClient(model_name="cvr", version_label="stable", channel=channel)
    try:
        version, scores = _served(channel, newest, records)
        assert version == v1
        np.testing.assert_allclose(scores, _direct(base, v1, records), rtol=1e-6)

        # A day-2 run that fails mid-way (killed during training, as a preempted or crashed job): nothing
        # new is exported and version 1 keeps serving.
        failed = _start_task(
            days[2], tmp_path / "day2-failed", base, f"--warm_start_from={tmp_path / 'day1'}", "--epochs=100"
        )
        lines = []
        for line in failed.stderr:
            lines.append(line)
            if " step " in line and "examples/s" in line:
                break
        failed.kill()
        assert failed.wait(timeout=60) != 0 and any("Warm start from" in line for line in lines), "".join(lines)
        assert sorted(os.listdir(base)) == [str(v1)]  # no version, and no half-written hidden folder
        assert _served(channel, newest, records)[0] == v1

        # Day 2: warm-started from day 1 on day 2's files, exported into the same base; retention keeps 1
        # version, and the labelled one.
        day2 = _task(
            days[2],
            tmp_path / "day2",
            base,
            f"--warm_start_from={tmp_path / 'day1'}",
            "--keep_versions=1",
            f"--serving_config={config_path}",
        )
        assert day2.returncode == 0, day2.stderr[-3000:]
        report = json.loads((tmp_path / "day2" / "metrics.json").read_text())
        assert report["warm_start"]["restored"] > 0 and report["warm_start"]["initialized"] == []
        assert report["warm_start"]["source"].startswith(str(tmp_path / "day1" / "checkpoints"))
        v2 = existing_versions(base)[-1]
        assert existing_versions(base) == [v1, v2]  # version 1 is labelled: not retired
        _until(lambda: _served(channel, newest, records)[0] == v2)  # rolled forward without a restart
        np.testing.assert_allclose(_served(channel, newest, records)[1], _direct(base, v2, records), rtol=1e-6)
        version, scores = _served(channel, stable, records)  # the pinned version, by label (rollback)
        assert version == v1
        np.testing.assert_allclose(scores, _direct(base, v1, records), rtol=1e-6)
        assert not np.allclose(_direct(base, v1, records), _direct(base, v2, records))

        # Promote day 2: move the label; the server applies the edited file.
        atomic.write_file(config_path, model_config.set_labels(open(config_path).read(), {"cvr": {"stable": v2}}))
        _until(lambda: _served(channel, stable, records)[0] == v2)

        # Day 3 retires day 1, the oldest and no longer labelled; the server unloads it.
        day3 = _task(
            days[3],
            tmp_path / "day3",
            base,
            f"--warm_start_from={base}",  # an export base: its newest version
            "--keep_versions=1",
            f"--serving_config={config_path}",
        )
        assert day3.returncode == 0, day3.stderr[-3000:]
        v3 = existing_versions(base)[-1]
        assert existing_versions(base) == [v2, v3]
        _until(lambda: exported.versions("cvr") == [v2, v3])
        assert _served(channel, newest, records)[0] == v3 and _served(channel, stable, records)[0] == v2

        # Roll back: the label returns to day 2 after a bad day 3 is noticed -- already there; and to day 3
        # and back, as an operator would.
        for target in (v3, v2):
            atomic.write_file(
                config_path, model_config.set_labels(open(config_path).read(), {"cvr": {"stable": target}})
            )
            _until(lambda target=target: _served(channel, stable, records)[0] == target)
    finally:
        channel.close()
        server.stop(None).wait()
        exported.close()
