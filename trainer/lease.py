"""One writer per model folder: a lease the running job holds, renews and releases.

Two `trainer.task` runs writing one `--model_dir` at once (a scheduler that
launched the daily job twice, a second launch by hand) would interleave
checkpoints and exports. The job's chief holds `<model_dir>/.tfcvr-lease.json`
({holder, host, pid, job, started, renewed, token}) from before it reads data
until it exits, rewriting `renewed` every `RENEW_SECONDS`. A second run is
refused with one line naming the holder, unless the lease is free:

* no lease file, or one released by a finished run;
* expired: not renewed for `LEASE_SECONDS` (a holder killed with SIGKILL or
  on a lost machine stops renewing; the next run waits at most that long);
* the holder is this machine's process that no longer runs;
* the holder is the same Vertex AI job (`CLOUD_ML_JOB_ID`): the job restarted
  after a preemption, on this or another machine.

On a local disk the chief also holds an exclusive `flock` on
`<model_dir>/.tfcvr-lease.lock` for its lifetime: two runs racing for the
folder cannot both get it, and the kernel releases it when the holder dies,
however it dies. On gs:// there is no lock: taking the lease writes it
through a temporary object renamed over the old one (a copy there) and reads
it back after `SETTLE_SECONDS`; of two runs racing for a free lease, the one
whose token is not read back is refused. Two launches within that second may
both start, so on gs:// the lease is best effort against launches seconds
apart (tests/trainer/test_lease.py).
"""

import atexit
import fcntl
import json
import os
import socket
import threading
import time
import uuid

import tensorflow as tf
from absl import app, logging

from tfcvr import atomic

LEASE_FILE = ".tfcvr-lease.json"
LOCK_FILE = ".tfcvr-lease.lock"
RENEW_SECONDS = 30.0
LEASE_SECONDS = 300.0
SETTLE_SECONDS = 1.0  # gs://: time for a racing run's write to land before the lease is read back


def _job_id() -> str | None:
    """The scheduler's id of this job, shared by its restarts (Vertex AI's CLOUD_ML_JOB_ID), if any."""
    return os.environ.get("CLOUD_ML_JOB_ID") or None


def _process_start(pid: int | str = "self") -> str:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22; "" without /proc or process)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _running_here(holder: dict) -> bool:
    """Whether `holder`'s process is alive on this machine (False for another machine's: unknown, not running here)."""
    if holder.get("host") != socket.gethostname():
        return False
    if int(holder["pid"]) == os.getpid():
        # This pid: this process, or a restarted container's earlier one that had the same pid and hostname.
        return holder.get("process_start") == _process_start()
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    # A live process with that pid: the holder, unless the pid was reused by a process started since.
    started = _process_start(int(holder["pid"]))
    return not (started and holder.get("process_start") and started != holder["process_start"])


class ModelDirLease:
    """The lease on a model folder (a context manager: `acquire` on enter, `release` on exit and at exit).

    Args:
      model_dir: the folder (local or gs://); created if needed.
      flag: the flag that named it, for messages.
      renew_seconds, lease_seconds: how often the lease is renewed, and how
        long after its last renewal another run may take it.
      clock: seconds since the epoch (tests move it).
    """

    def __init__(
        self,
        model_dir: str,
        flag: str = "--model_dir",
        renew_seconds: float = RENEW_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        clock=time.time,
    ):
        if not 0 < renew_seconds < lease_seconds:
            raise ValueError(f"Renew the lease ({renew_seconds} s) more often than it expires ({lease_seconds} s).")
        self.path = os.path.join(model_dir, LEASE_FILE)
        self._flag, self._model_dir = flag, model_dir
        self._renew_seconds, self._lease_seconds, self._clock = renew_seconds, lease_seconds, clock
        self._token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._started = clock()
        self._lock_file = None if "://" in model_dir else os.path.join(model_dir, LOCK_FILE)
        self._lock_fd: int | None = None

    def __enter__(self) -> "ModelDirLease":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def holder(self) -> dict | None:
        """The lease as recorded, or None when there is none (or an unreadable one, which nobody holds)."""
        try:
            with tf.io.gfile.GFile(self.path) as f:
                return json.load(f)
        except tf.errors.NotFoundError:
            return None
        except (ValueError, tf.errors.OpError) as e:
            logging.warning("Ignoring an unreadable lease %s: %s", self.path, e)
            return None

    def free(self, holder: dict | None) -> bool:
        """Whether a run may take the lease `holder` describes (the module docstring's cases)."""
        if holder is None or holder.get("released"):
            return True
        if self._clock() - float(holder.get("renewed", 0)) > self._lease_seconds:
            return True
        if holder.get("host") == socket.gethostname() and not _running_here(holder):
            return True
        return _job_id() is not None and holder.get("job") == _job_id()

    def acquire(self) -> None:
        """Takes the lease and starts renewing it; an app.UsageError naming the holder when another run has it."""
        tf.io.gfile.makedirs(self._model_dir)
        if self._lock_file is not None:
            self._lock()
        try:
            self._take()
        except BaseException:
            self.release()  # the local lock, if taken
            raise
        self._renewer = threading.Thread(target=self._renew, name="model-dir-lease", daemon=True)
        self._renewer.start()
        atexit.register(self.release)

    def _take(self) -> None:
        """Writes this run's lease over a free one and checks it reads back (an app.UsageError otherwise)."""
        held = self.holder()
        if self._lock_fd is None and not self.free(held):  # a local lock, once taken, says the holder is gone
            raise app.UsageError(self._refusal(held))
        self._write(released=False)
        if self._lock_fd is None:
            time.sleep(SETTLE_SECONDS)
        read_back = self.holder()
        if read_back is None or read_back.get("token") != self._token:
            raise app.UsageError(self._refusal(read_back))
        if held is not None and not held.get("released"):
            logging.warning("Took over %s from %s, which no longer holds it.", self.path, held.get("holder"))

    def release(self) -> None:
        """Stops renewing and marks the lease released (if it is still this run's), then drops the local lock."""
        if self._renewer is not None:
            self._stop.set()
            self._renewer.join()
            self._renewer = None
            current = self.holder()
            if current is not None and current.get("token") == self._token:
                self._write(released=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _lock(self) -> None:
        """The local folder's exclusive lock, or an app.UsageError naming the run that holds it."""
        assert self._lock_file is not None
        fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise app.UsageError(self._refusal(self.holder())) from None
        self._lock_fd = fd

    def _renew(self) -> None:
        while not self._stop.wait(self._renew_seconds):
            try:
                current = self.holder()
                if current is None or current.get("token") != self._token:
                    # Another run took the lease after this one failed to renew it in time: never write over it.
                    logging.error(
                        "Lost the lease %s to %s; no longer renewing it.", self.path, (current or {}).get("holder")
                    )
                    return
                self._write(released=False)
            except tf.errors.OpError as e:  # a flaky store: the next renewal tries again, well before expiry
                logging.warning("Could not renew the lease %s: %s", self.path, e)

    def _write(self, released: bool) -> None:
        now = self._clock()
        record = {
            "holder": f"{socket.gethostname()}:{os.getpid()}",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "process_start": _process_start(),
            "job": _job_id(),
            "started": self._started,
            "renewed": now,
            "released": released,
            "token": self._token,
        }
        atomic.write_file(self.path, json.dumps(record))

    def _refusal(self, holder: dict | None) -> str:
        holder = holder or {}
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder.get("started", 0))))
        renewed = self._clock() - float(holder.get("renewed", 0))
        return (
            f"{self._flag}={self._model_dir} is in use by another run: {holder.get('holder')} "
            f"(job {holder.get('job')}), started {started}, lease renewed {renewed:.0f} s ago. Wait for it to end, "
            f"stop it, or use another {self._flag}; a run that died frees the folder {self._lease_seconds:.0f} s "
            f"after its last renewal ({self.path})."
        )
