"""SIGTERM to `python -m trainer.task` (one worker, and one worker of a 2-worker MultiWorkerMirrored cluster).

The job checkpoints, exits with the restartable status, and the restarted job ends with the weights of a
run that was never interrupted.
"""

import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from trainer import local_cluster
from trainer.preemption import PREEMPTED_EXIT_STATUS

# End-to-end: subprocesses and clusters; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow

EPOCHS = 4  # the simulated fixture's 2,400 training records at batch 256: 9 steps per epoch, 36 in all
PROGRESS = re.compile(r" step (\d+) \(")


def _args(simulated, model_dir):
    return [
        "--model=esmm",
        f"--train_files={simulated['train']}",
        f"--eval_files={simulated['eval']}",
        f"--schema={simulated['schema']}",
        f"--model_dir={model_dir}",
        "--batch_size=256",
        "--embedding_dim=4",
        "--hidden_units=16",
        "--tower_units=8,4",
        f"--epochs={EPOCHS}",
        "--log_every=1",  # a progress line per step: the test signals at a step it has seen
        "--steps_per_execution=1",
        "--checkpoint_every=1000",  # none between epochs: the resumed run starts from the preemption's
    ]


def _env():
    return {**os.environ, "PYTHONPATH": os.getcwd()}


def _final_weights(model_dir):
    """{checkpoint key: value} of every model weight and the step in the newest checkpoint of a run."""
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
    keys = [k for k in reader.get_variable_to_shape_map() if k.startswith(("weights/", "global_step/"))]
    return {key: reader.get_tensor(key) for key in keys}


def _assert_same_weights(model_dir, reference_dir):
    final, reference = _final_weights(model_dir), _final_weights(reference_dir)
    assert sorted(final) == sorted(reference)
    for key, value in reference.items():
        np.testing.assert_array_equal(final[key], value, err_msg=key)


def _wait_for_step(log_path, step, process, timeout=240):
    """Blocks until the task's log shows a progress line at `step` or later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text() if log_path.exists() else ""
        if any(int(s) >= step for s in PROGRESS.findall(text)):
            return
        assert process.poll() is None, f"the task ended before step {step}:\n{text[-3000:]}"
        time.sleep(0.05)
    raise AssertionError(f"no progress line at step {step} within {timeout} s")


def _run(args, log_path):
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "trainer.task", *args], env=_env(), stdout=log, stderr=subprocess.STDOUT
        )


def test_a_job_preempted_twice_resumes_to_the_uninterrupted_weights(simulated, tmp_path):
    reference = _run(_args(simulated, tmp_path / "reference"), tmp_path / "reference.log")
    assert reference.wait(timeout=240) == 0, (tmp_path / "reference.log").read_text()[-3000:]

    model_dir, stops = tmp_path / "preempted", []
    for attempt, step in enumerate(sorted(random.Random(1).sample(range(3, 30), 2))):
        log_path = tmp_path / f"attempt-{attempt}.log"
        process = _run(_args(simulated, model_dir), log_path)
        _wait_for_step(log_path, step, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == PREEMPTED_EXIT_STATUS, log_path.read_text()[-3000:]
        stopped = re.search(r"Preempted at step (\d+): checkpoint (\S+) written", log_path.read_text())
        assert stopped, log_path.read_text()[-3000:]
        stops.append(int(stopped.group(1)))
        assert stops[-1] >= step and tf.train.latest_checkpoint(str(model_dir / "checkpoints")) == stopped.group(2)
    assert stops[0] < stops[1]
    final = _run(_args(simulated, model_dir), tmp_path / "final.log")
    assert final.wait(timeout=240) == 0, (tmp_path / "final.log").read_text()[-3000:]
    assert f"Restored {model_dir / 'checkpoints'}/ckpt-{stops[1]}" in (tmp_path / "final.log").read_text()
    _assert_same_weights(model_dir, tmp_path / "reference")


def _cluster_run(simulated, model_dir, log_dir, terminate_at=None):
    """A 2-worker MultiWorkerMirrored run; with `terminate_at`, worker 1 gets SIGTERM at that step. Exit codes."""
    log_dir.mkdir()
    ports = local_cluster.free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes = local_cluster.launch_tasks(
        cluster,
        [("worker", 0), ("worker", 1)],
        _args(simulated, model_dir),
        str(log_dir),
        env={"PYTHONPATH": os.getcwd()},
    )
    try:
        if terminate_at is not None:
            _wait_for_step(log_dir / "worker-1.log", terminate_at, processes[1])
            processes[1].send_signal(signal.SIGTERM)
        return [p.wait(timeout=240) for p in processes]
    finally:
        for p in processes:
            p.kill()


def test_one_preempted_worker_stops_the_multi_worker_job_at_one_step_and_it_resumes(simulated, tmp_path):
    assert _cluster_run(simulated, tmp_path / "reference", tmp_path / "reference-logs") == [0, 0]
    model_dir = tmp_path / "preempted"
    codes = _cluster_run(simulated, model_dir, tmp_path / "preempted-logs", terminate_at=11)
    logs = {name: (tmp_path / "preempted-logs" / name).read_text() for name in ("worker-0.log", "worker-1.log")}
    assert codes == [PREEMPTED_EXIT_STATUS] * 2, {name: log[-3000:] for name, log in logs.items()}
    # Both workers stopped at the same step (the chief learned of worker 1's signal through the all-reduce).
    steps = {name: re.search(r"Preempted at step (\d+)", log).group(1) for name, log in logs.items()}
    assert len(set(steps.values())) == 1, steps
    assert _cluster_run(simulated, model_dir, tmp_path / "resumed-logs") == [0, 0]
    _assert_same_weights(model_dir, tmp_path / "reference")
