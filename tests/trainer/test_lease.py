"""One writer per model folder: a live run refuses a second one; a dead, expired or restarted holder does not."""

import json
import os
import socket
import subprocess
import sys
import threading
import uuid

import pytest
import tensorflow as tf
from absl import app

from trainer import lease as lease_lib
from trainer.lease import ModelDirLease


def test_a_held_local_folder_refuses_a_second_run_naming_the_holder(tmp_path):
    first = ModelDirLease(str(tmp_path))
    first.acquire()
    try:
        with pytest.raises(
            app.UsageError,
            match=rf"--model_dir={tmp_path} is in use by another run: "
            rf"{socket.gethostname()}:\d+ \(job None\), started .* lease renewed \d+ s ago",
        ):
            ModelDirLease(str(tmp_path)).acquire()
    finally:
        first.release()
    recorded = json.loads((tmp_path / lease_lib.LEASE_FILE).read_text())
    assert recorded["released"] is True
    with ModelDirLease(str(tmp_path)):  # free again
        assert json.loads((tmp_path / lease_lib.LEASE_FILE).read_text())["released"] is False


def test_the_local_lock_goes_with_the_process_that_held_it(tmp_path):
    # A process that takes the folder and dies without releasing it (the kernel drops its flock).
    script = (
        f"import os; from trainer.lease import ModelDirLease; ModelDirLease({str(tmp_path)!r}).acquire(); os._exit(9)"
    )
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 9
    assert json.loads((tmp_path / lease_lib.LEASE_FILE).read_text())["released"] is False
    with ModelDirLease(str(tmp_path)):
        pass


class _Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def object_store(monkeypatch):
    """A folder on TensorFlow's in-memory file system (no local lock: the gs:// behaviour), unique per test."""
    monkeypatch.setattr(lease_lib, "SETTLE_SECONDS", 0.0)
    return f"ram://lease-{uuid.uuid4().hex}"  # not id(): an id is reused once its object is freed


def _abandoned(folder, clock):
    """A lease taken and then never renewed nor released: its holder died."""
    holder = ModelDirLease(folder, clock=clock)
    holder.acquire()
    holder._stop.set()  # the renewer stops as a killed process's would, without marking the lease released
    holder._renewer.join()
    holder._renewer = None
    return holder


def test_on_an_object_store_a_lease_blocks_until_it_expires(object_store):
    clock = _Clock()
    _abandoned(object_store, clock)
    clock.now += lease_lib.LEASE_SECONDS - 1
    with pytest.raises(app.UsageError, match="is in use by another run"):
        ModelDirLease(object_store, clock=clock).acquire()
    clock.now += 2  # past the lease
    with ModelDirLease(object_store, clock=clock):
        pass


def test_a_restart_of_the_same_vertex_job_takes_the_lease_over(object_store, monkeypatch):
    monkeypatch.setenv("CLOUD_ML_JOB_ID", "1234")
    clock = _Clock()
    _abandoned(object_store, clock)
    with ModelDirLease(object_store, clock=clock):  # the same job, restarted: not blocked
        pass
    _abandoned(object_store, clock)
    monkeypatch.setenv("CLOUD_ML_JOB_ID", "5678")
    with pytest.raises(app.UsageError, match=r"\(job 1234\)"):
        ModelDirLease(object_store, clock=clock).acquire()


def _assert_free_when_abandoned_by(folder, **holder_fields):
    """A lease abandoned by a holder described by `holder_fields` (recorded over this process's) is free at once."""
    clock = _Clock()
    holder = _abandoned(folder, clock)
    with tf.io.gfile.GFile(holder.path, "w") as f:
        f.write(json.dumps({**holder.holder(), **holder_fields}))
    with ModelDirLease(folder, clock=clock):
        pass


def test_a_holder_that_no_longer_runs_on_this_machine_frees_the_lease(object_store):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _assert_free_when_abandoned_by(object_store, pid=int(dead.stdout))  # the same host, a process that has ended


def test_a_restarted_container_with_the_same_pid_does_not_block_itself(object_store):
    _assert_free_when_abandoned_by(object_store, process_start="an earlier process")  # same host and pid


def test_a_run_whose_lease_was_taken_over_stops_renewing_it(object_store):
    clock = _Clock()
    first = ModelDirLease(object_store, renew_seconds=0.05, lease_seconds=10, clock=clock)
    first.acquire()
    first._stop.set()  # stalled past its lease ...
    first._renewer.join()
    clock.now += 11
    second = ModelDirLease(object_store, renew_seconds=5, lease_seconds=10, clock=clock)
    second.acquire()  # ... and taken over
    first._stop.clear()
    first._renewer = threading.Thread(target=first._renew, daemon=True)
    first._renewer.start()  # the stalled run wakes up
    first._renewer.join(timeout=5)
    assert not first._renewer.is_alive()  # it saw another token and stopped
    assert second.holder()["token"] == second._token
    second.release()


def test_renewal_must_come_before_expiry(tmp_path):
    with pytest.raises(ValueError, match="more often than it expires"):
        ModelDirLease(str(tmp_path), renew_seconds=300, lease_seconds=300)


@pytest.mark.slow
def test_trainer_task_refuses_a_model_dir_another_run_holds(tmp_path):
    with ModelDirLease(str(tmp_path)):
        finished = subprocess.run(
            [sys.executable, "-m", "trainer.task", "--model=esmm", "--sim_rows=2000", f"--model_dir={tmp_path}"],
            capture_output=True,
            text=True,
            check=False,
        )
    assert finished.returncode == 2, finished.stderr[-2000:]
    assert f"trainer.task: error: --model_dir={tmp_path} is in use by another run: {socket.gethostname()}:" in (
        finished.stderr
    )
    assert not (tmp_path / "checkpoints").exists()  # refused before it wrote anything


def test_a_holder_whose_pid_another_process_took_since_frees_the_lease(object_store):
    # The recorded pid is alive (this test's parent process), but started at another time than recorded.
    _assert_free_when_abandoned_by(object_store, pid=os.getppid(), process_start="a process since ended")
