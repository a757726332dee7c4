"""Preemption: a termination signal becomes a checkpoint and a restartable exit, not lost work.

Vertex AI, GKE and Compute Engine stop a preempted, evicted or rescheduled
worker with SIGTERM and kill it when the grace period ends. While a
`TrainingLoop` trains, a `TerminationWatcher` records the signal instead of
dying of it; the loop checks between its `tf.function` calls (every
`steps_per_execution` steps), writes a checkpoint at that step and raises
`Preempted`, and `trainer.task` exits with `PREEMPTED_EXIT_STATUS`. The
restarted job restores that checkpoint and resumes at the same step and data
position (trainer/loop.py), so at most one execution's steps are run twice.

Under MultiWorkerMirroredStrategy every worker must save at the same step
(a checkpoint is a collective there): the check all-reduces the workers'
flags, so one worker's signal stops them all at the same step. Under
ParameterServerStrategy the coordinator (the chief) watches; its workers are
stateless and the coordinator reschedules their steps.

Why not `tf.distribute.experimental.PreemptionCheckpointHandler`, which does
this for MultiWorkerMirrored jobs: on Google Cloud CPU machines, where Vertex
AI CPU training jobs run, it detects the platform and does nothing (TF 2.21:
"does not support usage with TPU or CPU device on GCP"); it refuses
ParameterServerStrategy; and it saves through a checkpoint manager and a step
counter of its own, beside the loop's checkpoints that already record the
step and the data position.
"""

import signal
import threading
import types

import tensorflow as tf
from absl import logging

# 128 + SIGTERM: what Compute Engine and Kubernetes report for a terminated process, and the status TensorFlow's own
# failure handling exits with for a restart (failure_handling_util's restartable exit code).
PREEMPTED_EXIT_STATUS = 128 + signal.SIGTERM


class Preempted(Exception):
    """Training stopped on a termination signal after writing a checkpoint at `step`."""

    def __init__(self, step: int, checkpoint: str | None):
        super().__init__(f"Preempted: stopped at step {step} on a termination signal; checkpoint {checkpoint}.")
        self.step = step
        self.checkpoint = checkpoint


class TerminationWatcher:
    """Records SIGTERM while training runs, instead of letting it kill the process (a context manager).

    Outside the `with` block the previous handler is back: a signal during
    evaluation or export ends the process as before (the export is written
    to a temporary folder and renamed, so nothing half-written looks done).
    The handler can only be installed from the main thread; elsewhere (a
    test's thread, a notebook's worker) the watcher never fires. With
    `handle_signal=False` it installs nothing and only `request` stops
    training (the leaderboard, whose runs cannot resume, dies of SIGTERM as
    before).
    """

    def __init__(self, strategy: tf.distribute.Strategy, handle_signal: bool = True):
        self._strategy = strategy
        self._handle_signal = handle_signal
        self._signalled = threading.Event()
        self._previous: signal.Handlers | int | None | object = None
        self._installed = False
        # Under MultiWorkerMirrored every worker must agree; elsewhere this process decides alone.
        self._collective = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        self._acted_on = False  # `requested` said True: the loop checkpoints and stops
        self._any_worker = tf.function(self._sum_across_workers) if self._collective else None

    def __enter__(self) -> "TerminationWatcher":
        self._signalled.clear()
        self._acted_on = False
        if self._handle_signal and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_signal)
            self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._installed:
            return
        # None: a handler installed outside Python; the default is the closest Python can restore.
        previous = signal.SIG_DFL if self._previous is None else self._previous
        signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]  # what signal.signal returned
        self._installed = False
        if self._signalled.is_set() and not self._acted_on:
            # Signalled after the last check (the last epoch's checkpoint or evaluation): deliver it now, to the
            # handler that was there before, so the process ends as it would have without the watcher.
            signal.raise_signal(signal.SIGTERM)

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        del frame
        if not self._signalled.is_set():
            logging.warning("Received signal %d: checkpointing at the next step boundary, then exiting.", signum)
        self._signalled.set()

    def request(self) -> None:
        """What the signal does: asks training to stop at the next check (for a scheduler of one's own)."""
        self._signalled.set()

    def requested(self) -> bool:
        """True when this process, or under MultiWorkerMirrored any worker, was asked to terminate.

        Under MultiWorkerMirrored this is a collective: every worker calls it at
        the same points of the loop.
        """
        local = self._signalled.is_set()
        requested = local if self._any_worker is None else int(self._any_worker(tf.constant(int(local), tf.int32))) > 0
        self._acted_on = self._acted_on or requested
        return requested

    def _sum_across_workers(self, flag: tf.Tensor) -> tf.Tensor:
        per_replica = self._strategy.run(tf.identity, args=(flag,))
        return self._strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
