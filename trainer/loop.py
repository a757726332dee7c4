"""The one training loop, for every method and every distribution strategy.

Keras 3 `fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585,
#20329) and has no ClusterCoordinator support for ParameterServerStrategy, so
the loop is a custom one
around `strategy.run(step, ...)` with the method's step of each training stage
(`model.stage_step`, the one dispatch from a stage to its step). A method owns its step (losses,
which variables each optimizer updates); this loop owns distribution,
checkpoints, TensorBoard summaries and progress.

Checkpoints hold the model (with every optimizer it tracks), the global step,
the epoch and the steps done in that epoch. A restarted job restores the
newest one and resumes where it stopped: the epoch's data order is
reproducible (`TFRecordPipeline.dataset(epoch_index=...)`), so the batches
already trained on are skipped.

A method trained in stages (`CVRModel.training_stages`, e.g. UKD's teacher
then student) runs its stages back to back within one count of epochs, so
the epoch in the checkpoint also says which stage a restarted job is in. Each
stage's step is traced as its own `tf.function`.

A termination signal (SIGTERM: preemption, eviction) during `train` writes a
checkpoint at the next call boundary and raises `trainer.preemption.Preempted`
(trainer/preemption.py); the restarted job resumes there.

Steps run `steps_per_execution` at a time: one `tf.function` call loops over
that many batches of the iterator in graph mode (as Keras' `fit` does), which
saves the per-call Python and dispatch cost (`benchmarks/throughput.py
--steps_per_execution` measures it). Executions end at log and checkpoint boundaries and
at the end of the data, so logs, checkpoints and the trained weights are
those of one step per call; only the speed differs. Under
ParameterServerStrategy a scheduled closure runs that many steps on its
worker, which saves one coordinator round trip per step.
"""

import os
import time
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf
from absl import logging

from trainer import distribution
from trainer.preemption import Preempted, TerminationWatcher


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written; the message names it and the newest whole one."""


# Default steps per tf.function call of `python -m trainer.task` and the leaderboard.
STEPS_PER_EXECUTION = 16


class TrainingLoop:
    """Trains a compiled `CVRModel` built under `strategy.scope()`.

    Args:
      model: the model; its optimizers must already be built.
      strategy: the `tf.distribute.Strategy` the model was built under.
      checkpoint_dir: where checkpoints go (the chief's; others use temp dirs).
      summary_dir: TensorBoard log folder, or None for no summaries.
      log_every: steps between progress lines and summaries.
      checkpoint_every: steps between checkpoints (plus one per epoch).
      max_checkpoints: checkpoints kept.
      steps_per_execution: steps run by one `tf.function` call (at most;
        fewer up to a log or checkpoint step or the end of the data); under
        ParameterServerStrategy, the steps of one scheduled closure.
      handle_termination_signal: during `train`, SIGTERM checkpoints and
        raises `Preempted` instead of ending the process (`python -m
        trainer.task`); `termination.request()` does the same from code.
    """

    def __init__(
        self,
        model,
        strategy,
        checkpoint_dir,
        summary_dir=None,
        log_every=100,
        checkpoint_every=1000,
        max_checkpoints=3,
        steps_per_execution=1,
        handle_termination_signal=False,
    ):
        if log_every < 1 or checkpoint_every < 1 or steps_per_execution < 1:
            raise ValueError(
                "`log_every`, `checkpoint_every` and `steps_per_execution` must be positive. Received: "
                f"{log_every}, {checkpoint_every}, {steps_per_execution}"
            )
        self.model = model
        self.strategy = strategy
        self.log_every = log_every
        self.checkpoint_every = checkpoint_every
        self.steps_per_execution = steps_per_execution
        self._checkpoint_dir = distribution.writable_dir(checkpoint_dir, strategy)
        self._real_checkpoint_dir = checkpoint_dir
        with strategy.scope():
            self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.epoch_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch_step")
        # model: its optimizers' state; weights: every variable by path (`CVRModel.weights_by_path`).
        checkpoint = tf.train.Checkpoint(
            model=model,
            weights=model.weights_by_path(),
            global_step=self.global_step,
            epoch=self.epoch,
            epoch_step=self.epoch_step,
        )
        self.checkpoints = tf.train.CheckpointManager(checkpoint, self._checkpoint_dir, max_to_keep=max_checkpoints)
        self._summary_writer = (
            tf.summary.create_file_writer(distribution.writable_dir(summary_dir, strategy))
            if summary_dir
            else tf.summary.create_noop_writer()
        )
        self._stage_functions = {}
        self._execution_functions = {}
        self._epoch_steps = None  # set by train(): the steps of an epoch, when known, for progress lines
        # ParameterServerStrategy: this process coordinates; workers run the scheduled steps.
        self._coordinator = (
            tf.distribute.experimental.coordinator.ClusterCoordinator(strategy)
            if isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy)
            else None
        )
        self.termination = TerminationWatcher(strategy, handle_signal=handle_termination_signal)
        self.stop_requested = False  # set by `execute` after each call

    def restore(self) -> bool:
        """Restores the newest checkpoint, if any; True when one was restored."""
        # Every worker restores the chief's newest checkpoint (others only write to private folders): replicas
        # of a MultiWorkerMirrored job must resume from the same values and the same step.
        latest = tf.train.latest_checkpoint(self._real_checkpoint_dir)
        if latest is None:
            return False
        try:
            self.checkpoints.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:
            raise ValueError(
                f"Checkpoint {latest} does not match this model ({self.model.name}); it was written by a "
                f"different model or configuration. Use a fresh --model_dir. Detail: {e}"
            ) from e
        logging.info(
            "Restored %s: step %d, epoch %d (%d steps into it).",
            latest,
            int(self.global_step.numpy()),
            int(self.epoch.numpy()) + 1,
            int(self.epoch_step.numpy()),
        )
        return True

    def train(
        self,
        dataset_fn: Callable[[tf.distribute.InputContext, int], tf.data.Dataset],
        epochs: int,
        global_batch_size: int,
        steps_per_epoch: int | None = None,
        expected_steps_per_epoch: int | None = None,
        on_epoch_end: Callable[[str, int, int], None] | None = None,
    ) -> dict:
        """Runs the epochs left; returns {"steps", "seconds", "examples_per_second", final loss terms}.

        Args:
          dataset_fn: `(tf.distribute.InputContext, epoch) -> tf.data.Dataset`
            of per-replica batches; called once per epoch with the 0-based
            epoch index (for a reproducible order per epoch). Under
            ParameterServerStrategy it runs traced on the workers, so it must
            not read variables eagerly.
          epochs: epochs asked of the method (a resumed job runs the remaining
            ones); a staged method may add epochs of its own stages before them.
          global_batch_size: examples per step across replicas, for throughput.
          steps_per_epoch: steps per epoch; None runs each epoch to the end of
            its data. Multi-worker jobs need it (workers must step together),
            and so does ParameterServerStrategy (steps are scheduled by count,
            on datasets that repeat).
          expected_steps_per_epoch: the steps an epoch will take when known
            without `steps_per_epoch` (e.g. records // batch size), for the
            progress lines' step/total and ETA only.
          on_epoch_end: `(stage, epochs done, global step) -> None`, called
            after each epoch's checkpoint (the command line evaluates there).
        """
        if self._coordinator is not None and steps_per_epoch is None:
            raise ValueError("ParameterServerStrategy schedules a fixed number of steps: give steps_per_epoch.")
        self.restore()
        start_step, started = int(self.global_step.numpy()), time.perf_counter()
        last_terms: dict[str, float] = {}
        stages = self.model.training_stages(epochs)
        self._epoch_steps = steps_per_epoch or expected_steps_per_epoch
        with self._summary_writer.as_default(), self.termination:
            while int(self.epoch.numpy()) < sum(stage_epochs for _, stage_epochs in stages):
                stage = _stage_at(stages, int(self.epoch.numpy()))
                last_terms = self._train_epoch(stage, dataset_fn, steps_per_epoch, global_batch_size) or last_terms
                self.epoch.assign_add(1)
                self.epoch_step.assign(0)
                self._save_checkpoint(int(self.global_step.numpy()))
                if on_epoch_end is not None:
                    on_epoch_end(stage, int(self.epoch.numpy()), int(self.global_step.numpy()))
        seconds = time.perf_counter() - started
        steps = int(self.global_step.numpy()) - start_step
        distribution.cleanup_worker_dir(self._checkpoint_dir, self._real_checkpoint_dir)
        return {
            "steps": steps,
            "seconds": seconds,
            "examples_per_second": steps * global_batch_size / seconds if seconds > 0 else float("nan"),
            **last_terms,
        }

    def _train_epoch(self, stage: str, dataset_fn, steps_per_epoch: int | None, global_batch_size: int) -> dict:
        """The current epoch of `stage` from its resume point; the last loss terms logged (or {})."""
        done = int(self.epoch_step.numpy())  # > 0 only when resuming mid-epoch

        # Default arguments bind this epoch's values: the closure runs later, on the workers.
        def epoch_dataset_fn(context, skip=done, epoch=int(self.epoch.numpy())):  # noqa: B008
            return dataset_fn(context, epoch).skip(skip)

        if self._coordinator is not None:
            assert steps_per_epoch is not None  # train() refuses ParameterServerStrategy without it
            per_worker = self._coordinator.create_per_worker_dataset(
                lambda: self.strategy.distribute_datasets_from_function(epoch_dataset_fn)
            )
            return self._run_scheduled_epoch(stage, iter(per_worker), steps_per_epoch - done, global_batch_size)
        dataset = self.strategy.distribute_datasets_from_function(epoch_dataset_fn)
        steps = None if steps_per_epoch is None else max(0, steps_per_epoch - done)
        return self._run_epoch(stage, iter(dataset), steps, global_batch_size)

    def step_function(self, stage: str, from_iterator: bool = False) -> Callable:
        """The distributed step of `stage`, traced once: on a batch, or on a worker's iterator.

        `from_iterator`: ParameterServerStrategy, where the coordinator
        schedules the step on a worker that reads its own per-worker iterator.
        """
        key = (stage, from_iterator)
        if key not in self._stage_functions:
            self._stage_functions[key] = tf.function(self._distributed_step(stage, from_iterator))
        return self._stage_functions[key]

    def execute(self, stage: str, iterator: Iterator, steps: int) -> tuple[int, dict]:
        """Runs up to `steps` steps of `stage` on `iterator`, `steps_per_execution` per call.

        Returns (steps run, {loss term: sum over those steps}); fewer steps
        than asked at the end of the data, or after the call in which
        termination was requested (`stop_requested` then says so).
        """
        count, totals = 0, dict[str, tf.Tensor]()
        while count < steps:
            ran, sums = self._execute(stage, iterator, min(self.steps_per_execution, steps - count))
            if ran == 0:
                break
            count += ran
            totals = {name: totals.get(name, 0.0) + value for name, value in sums.items()}
            # Checked after every call (a collective under MultiWorkerMirrored: every worker makes the same calls).
            self.stop_requested = self.termination.requested()
            if self.stop_requested:
                break
        return count, totals

    def _distributed_step(self, stage, from_iterator):
        step_fn = self.model.stage_step(stage)

        def distributed_step(data):
            batch = next(data) if from_iterator else data
            terms = self.strategy.run(step_fn, args=(batch,))
            self.global_step.assign_add(1)
            self.epoch_step.assign_add(1)
            return {name: self.strategy.reduce("MEAN", value, axis=None) for name, value in terms.items()}

        return distributed_step

    def _execute(self, stage, iterator, steps: int):
        """One call: up to `steps` steps -> (steps run, {term: sum}) as Python numbers and tensors."""
        if stage not in self._execution_functions:
            # The first step runs alone: its terms give the structure the multi-step loop sums into.
            try:
                batch = next(iterator)
            except StopIteration:  # tf.errors.OutOfRangeError subclasses it
                return 0, {}
            terms = self.step_function(stage)(batch)
            self._execution_functions[stage] = self._multi_step_function(stage, terms)
            return 1, terms
        count, totals = self._execution_functions[stage](iterator, tf.constant(steps, tf.int32))
        return int(count), totals

    def _multi_step_function(self, stage, example_terms):
        distributed_step = self._distributed_step(stage, from_iterator=False)
        zeros = {name: tf.zeros_like(value) for name, value in example_terms.items()}

        def multi_step(iterator, steps):
            count, totals = tf.constant(0, tf.int32), dict(zeros)
            for _ in tf.range(steps):
                batch = iterator.get_next_as_optional()
                if not batch.has_value():
                    break
                terms = distributed_step(batch.get_value())
                totals = {name: totals[name] + terms[name] for name in totals}
                count += 1
            return count, totals

        return tf.function(multi_step)

    def _run_scheduled_epoch(self, stage, iterator, steps, global_batch_size) -> dict:
        """Schedules `steps` steps on the workers; joins to log and to checkpoint a consistent state.

        Each closure runs up to `steps_per_execution` steps on the worker that
        takes it (the first closure of a stage one step, whose terms give the
        structure the multi-step loop sums into).
        """
        pending, window_start, last_terms, done = [], time.perf_counter(), {}, 0
        timed = 0  # steps the window's time measures: not the closure that traced the step
        while done < steps:
            chunk = min(self.steps_per_execution, steps - done, self._steps_to_boundary(done))
            if stage not in self._execution_functions:
                first = self._coordinator.schedule(self.step_function(stage, from_iterator=True), args=(iterator,))
                terms = first.fetch()
                self._execution_functions[stage] = self._multi_step_function(stage, terms)
                pending.append((1, terms))
                chunk = 1
                window_start, timed = time.perf_counter(), timed - 1  # the +1 below does not count
            else:
                pending.append(
                    (
                        chunk,
                        self._coordinator.schedule(
                            self._execution_functions[stage], args=(iterator, tf.constant(chunk, tf.int32))
                        ),
                    )
                )
            done, timed = done + chunk, timed + chunk
            log, save = done % self.log_every == 0 or done == steps, done % self.checkpoint_every == 0
            if log or save:
                self._coordinator.join()
            if log:
                executions = [
                    (count, value) if isinstance(value, dict) else _fetched(value.fetch()) for count, value in pending
                ]
                last_terms = self._report(
                    stage, executions, time.perf_counter() - window_start, global_batch_size, timed, done
                )
                pending, window_start, timed = [], time.perf_counter(), 0
            if save:
                self._save_checkpoint(int(self.global_step.numpy()))
            if self.termination.requested():
                self._coordinator.join()
                self._stop_preempted()
        return last_terms

    def _run_epoch(self, stage, iterator, steps, global_batch_size) -> dict:
        """Steps through `iterator` (to its end, or `steps` steps), logging and checkpointing on schedule."""
        pending, window_start, last_terms, done = [], time.perf_counter(), {}, 0
        step = int(self.global_step.numpy())
        timed = 0  # steps of the window that count for examples/s: not the call that traced the step
        while steps is None or done < steps:
            # Run to the next log or checkpoint step (or the epoch's end) at most.
            chunk = self._steps_to_boundary(step)
            if steps is not None:
                chunk = min(chunk, steps - done)
            tracing = stage not in self._execution_functions
            ran, totals = self.execute(stage, iterator, chunk)
            if ran == 0:
                break
            pending.append((ran, totals))
            done, step = done + ran, step + ran
            if tracing:
                window_start = time.perf_counter()
            else:
                timed += ran
            if step % self.log_every == 0:
                last_terms = self._report(
                    stage, pending, time.perf_counter() - window_start, global_batch_size, timed, done
                )
                pending, window_start, timed = [], time.perf_counter(), 0
            if step % self.checkpoint_every == 0:
                self._save_checkpoint(step)
            if self.stop_requested:
                self._stop_preempted()
            if ran < chunk:
                break
        if pending:
            last_terms = self._report(
                stage, pending, time.perf_counter() - window_start, global_batch_size, timed, done
            )
        return last_terms

    def _save_checkpoint(self, step: int) -> str:
        """Writes ckpt-<step>; one that cannot be written (a full disk, a failing store) is a CheckpointWriteError.

        TensorFlow writes a checkpoint's files first and names it in the
        folder's `checkpoint` state file last (renamed over the old one), so a
        write cut short never replaces the newest whole checkpoint; its partial
        files are removed here, and restarting resumes from that checkpoint.
        """
        try:
            return self.checkpoints.save(checkpoint_number=step)
        except tf.errors.OpError as e:
            prefix = os.path.join(self._checkpoint_dir, f"ckpt-{step}")
            # What a restart reads: the state file on disk (TensorFlow lists the new checkpoint in memory before
            # it writes that file, which may be the write that failed).
            latest = tf.train.latest_checkpoint(self._checkpoint_dir)
            leftovers = tf.io.gfile.glob(os.path.join(self._checkpoint_dir, "checkpoint.tmp*"))
            if prefix != latest:  # not the newest whole checkpoint: this write's partial files
                leftovers += tf.io.gfile.glob(f"{prefix}.*") + tf.io.gfile.glob(f"{prefix}_temp*")
            for partial in leftovers:
                _remove_quietly(partial)
            raise CheckpointWriteError(
                f"Could not write checkpoint {prefix}: {e.message.splitlines()[0]}. The newest whole checkpoint "
                f"({latest or 'none yet'}) is intact; the restarted command resumes there."
            ) from e

    def _stop_preempted(self) -> None:
        """A checkpoint at the current step (unless one was just written there), then `Preempted`."""
        step = int(self.global_step.numpy())
        path = self.checkpoints.latest_checkpoint
        if path is None or not path.endswith(f"-{step}"):
            path = self._save_checkpoint(step)
        logging.warning("Preempted at step %d: checkpoint %s written; a restarted job resumes from it.", step, path)
        raise Preempted(step, path)

    def _steps_to_boundary(self, position: int) -> int:
        """Steps from step count `position` to the next log or checkpoint step."""
        return min(self.log_every - position % self.log_every, self.checkpoint_every - position % self.checkpoint_every)

    def _report(self, stage, pending, seconds, global_batch_size, timed=None, epoch_done=None) -> dict:
        """Logs and summarises the mean loss terms of the steps since the last report.

        `pending`: (steps, {term: sum over those steps}) per execution;
        `timed`: how many of them `seconds` measured (default all);
        `epoch_done`: steps done in this epoch, for step/total and ETA.
        """
        steps = sum(count for count, _ in pending)
        timed = steps if timed is None else timed
        means = {
            name: float(sum(np.asarray(totals[name], np.float64) for _, totals in pending) / steps)
            for name in pending[0][1]
        }
        examples_per_second = timed * global_batch_size / seconds if seconds > 0 and timed else float("nan")
        step = int(self.global_step.numpy())
        diverged = sorted(name for name, value in means.items() if not np.isfinite(value))
        if diverged:
            raise FloatingPointError(
                f"{self.model.name} diverged in stage {stage!r} by step {step}: loss term(s) {diverged} are not "
                f"finite ({', '.join(f'{k}={v}' for k, v in means.items())}). Lower --learning_rate, or see the "
                "method's variance controls (propensity_floor, max_weight, normalization)."
            )
        for name, value in means.items():
            tf.summary.scalar(f"train/{name}", value, step=step)
        if np.isfinite(examples_per_second):
            tf.summary.scalar("train/examples_per_second", examples_per_second, step=step)
        terms = "  ".join(f"{name}={value:.4f}" for name, value in means.items())
        logging.info(
            "%s epoch %d%s  %s  %s",
            stage,
            int(self.epoch.numpy()) + 1,
            self._progress(step, epoch_done, examples_per_second / global_batch_size),
            "tracing" if not np.isfinite(examples_per_second) else f"{examples_per_second:.0f} examples/s",
            terms,
        )
        return means

    def _progress(self, step, epoch_done, steps_per_second) -> str:
        """ " step S" with, when the epoch's length is known, "/T (epoch) ETA 1m05s"."""
        total = self._epoch_steps
        if not total or epoch_done is None:
            return f" step {step}"
        text = f" step {step} ({epoch_done}/{total} of the epoch"
        if np.isfinite(steps_per_second) and steps_per_second > 0 and epoch_done < total:
            minutes, seconds = divmod(int((total - epoch_done) / steps_per_second), 60)
            text += f", ETA {minutes}m{seconds:02d}s"
        return text + ")"


def _stage_at(stages, epoch):
    """The stage that global epoch `epoch` (0-based) belongs to."""
    remaining = epoch
    for stage, stage_epochs in stages:
        if remaining < stage_epochs:
            return stage
        remaining -= stage_epochs
    raise ValueError(f"Epoch {epoch} is past the last training stage of {stages}.")


def _fetched(execution):
    """(steps run, {term: sum}) of a scheduled multi-step closure's fetched result."""
    count, totals = execution
    return int(count), totals


def _remove_quietly(path: str) -> None:
    """Removes a file or folder; one that cannot be removed now is left (no checkpoint state names it)."""
    try:
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        else:
            tf.io.gfile.remove(path)
    except tf.errors.OpError as e:
        logging.warning("Could not remove the partial checkpoint file %s: %s", path, e.message.splitlines()[0])
