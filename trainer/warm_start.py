"""Warm start: a new run begins from a previous run's weights instead of its initialisation.

    python -m trainer.task ... --model_dir=NEW_DIR --warm_start_from=PATH [--warm_start_partial]
        [--warm_start_optimizer]

PATH is a previous run's model_dir (its newest checkpoint, else its newest
export), a checkpoint folder or prefix (`.../checkpoints/ckpt-1200`), an
export version (`.../export/1700000000`) or an export base (its newest
complete version). Every model weight is matched by its Keras path
(`CVRModel.weights_by_path`: checkpoints store weights by path, exports carry
`tfcvr.export.weights_manifest`), so the day-2 model of a daily retrain starts
where day 1 ended although it is a new object in a new process.

* Strict by default: a weight the source lacks, holds with another shape, or
  holds but this model does not have (another method, architecture or schema)
  is an error listing every mismatch. `partial=True` starts the unmatched
  weights from their initial values (e.g. a new feature's embedding, and the
  first bottom layer whose input width grew with it), names each in the log
  and in the run's report, and ignores weights this model does not have.
* The served intercepts (`intercept_calibration/*`, refitted after every run's
  training and never read by training) are not carried over: the new run
  starts them at 0 and refits them after its own training (or serves its heads
  as trained with `--refit_intercepts=none`); a source written before they
  existed is no mismatch.
* Optimizer state (Adam's moments and iteration count) is fresh by default:
  the data of a new day re-estimates it within a few hundred steps, and a
  fresh count keeps Adam's bias correction right for the new run.
  `optimizer_state=True` also restores it, only from a checkpoint of the same
  method whose weights match exactly (the optimizers' slots are stored by
  position, not path); the learning rate stays the new run's.
* A warm start only seeds the weights of a run that has no checkpoint of its
  own: a restarted warm-started job resumes from its own checkpoints
  (`warm_start.json` beside them records the source), and a folder holding
  another run's checkpoints is refused rather than silently resumed.
* Training starts at the first epoch of the first stage: a two-stage method
  (UKD) trains its teacher stage again, from the source's teacher, and then its
  student, from the source's student.
* Under a distribution strategy every worker reads the source and assigns the
  same values, so replicas start equal (ParameterServerStrategy: the chief
  assigns the parameter servers' variables).
"""

import dataclasses
import json
import os
import re

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfcvr import atomic
from tfcvr.export import weights_manifest
from tfcvr.export.versions import SAVED_MODEL_FILE, existing_versions
from trainer import model_identity

# Written beside the checkpoints of a warm-started run: a restart resumes them only for the same source.
RECORD_FILE = "warm_start.json"
# How `tf.train.Checkpoint(weights={path: variable})` names a weight (TrainingLoop's checkpoints).
_CHECKPOINT_PREFIX, _CHECKPOINT_SUFFIX = "weights/", "/.ATTRIBUTES/VARIABLE_VALUE"
# Names listed per kind of mismatch in an error or log line before "and N more".
_LISTED = 12


class WarmStartError(ValueError):
    """The source cannot seed this model; the message lists why."""


@dataclasses.dataclass(frozen=True)
class WarmStartSource:
    """A resolved --warm_start_from: a checkpoint prefix or an export version folder."""

    given: str
    kind: str  # "checkpoint" or "export"
    path: str

    def describe(self) -> str:
        return f"{self.kind} {self.path}" + ("" if self.path == self.given else f" (from {self.given})")


def resolve(path: str) -> WarmStartSource:
    """The checkpoint or export version `path` names; WarmStartError saying what was looked for otherwise."""
    path = path.rstrip("/")
    if tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_FILE)):
        return WarmStartSource(path, "export", path)
    if tf.io.gfile.exists(path + ".index"):
        return WarmStartSource(path, "checkpoint", path)
    for folder in (path, os.path.join(path, "checkpoints")):
        if tf.io.gfile.isdir(folder) and (latest := tf.train.latest_checkpoint(folder)):
            return WarmStartSource(path, "checkpoint", latest)
    for base in (path, os.path.join(path, "export")):
        versions = existing_versions(base, complete_only=True)
        if versions:
            return WarmStartSource(path, "export", os.path.join(base, str(versions[-1])))
    raise WarmStartError(
        f"--warm_start_from={path}: found no checkpoint or export there (looked for an export version "
        f"<path>/{SAVED_MODEL_FILE}, a checkpoint prefix <path>.index, a checkpoint folder <path> or "
        "<path>/checkpoints, and export versions under <path> or <path>/export)."
    )


def source_for_run(warm_start_from: str, checkpoint_dir: str) -> WarmStartSource | None:
    """What a run with `checkpoint_dir` starts from: the resolved source, or None when it resumes itself.

    A run that already has checkpoints resumes them only when they are its
    own (a restarted warm-started job: `record` wrote the same source beside
    them); any other checkpoints there (yesterday's run in a reused folder)
    would silently replace the warm start, so they are refused.
    """
    if tf.io.gfile.isdir(checkpoint_dir) and tf.train.latest_checkpoint(checkpoint_dir):
        path = os.path.join(checkpoint_dir, RECORD_FILE)
        recorded = None
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                recorded = json.load(f).get("warm_start_from")
        if recorded != warm_start_from:
            raise WarmStartError(
                f"--warm_start_from={warm_start_from}: {checkpoint_dir} already holds checkpoints of a run "
                f"{'warm-started from ' + recorded if recorded else 'not warm-started'}; resuming them would "
                "ignore the warm start. Train in a new --model_dir (on Vertex AI a new --base_output_dir, whose "
                "checkpoints folder is AIP_CHECKPOINT_DIR)."
            )
        logging.info("Resuming the warm-started run from its checkpoints in %s.", checkpoint_dir)
        return None
    return resolve(warm_start_from)


def record(checkpoint_dir: str, warm_start_from: str, report: dict) -> None:
    """Writes what a run was warm-started from beside its checkpoints (`source_for_run` reads it on a restart)."""
    tf.io.gfile.makedirs(checkpoint_dir)
    text = json.dumps({"warm_start_from": warm_start_from, **report}, indent=2) + "\n"
    atomic.write_file(os.path.join(checkpoint_dir, RECORD_FILE), text)


def read_weights(source: WarmStartSource) -> dict[str, np.ndarray]:
    """{weight path: value} stored by the source."""
    if source.kind == "export":
        try:
            return weights_manifest.read_exported_weights(source.path)
        except ValueError as e:
            raise WarmStartError(f"--warm_start_from={source.given}: {e}") from None
    reader = tf.train.load_checkpoint(source.path)
    values = {
        _unescape(key[len(_CHECKPOINT_PREFIX) : -len(_CHECKPOINT_SUFFIX)]): reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if key.startswith(_CHECKPOINT_PREFIX) and key.endswith(_CHECKPOINT_SUFFIX)
    }
    if not values:
        raise WarmStartError(
            f"--warm_start_from={source.given}: {source.path} holds no weights by path (it was not written by "
            "tfcvr's training loop)."
        )
    return values


def _unescape(name: str) -> str:
    """A checkpoint's local name back to the Keras path (TensorFlow escapes '/' as '.S' and '.' as '..')."""
    return re.sub(r"\.(.)", lambda match: "/" if match.group(1) == "S" else match.group(1), name)


# Weight paths set after training (the served intercepts, `tfcvr.models.refit_intercepts`), not learned.
REFITTED_AFTER_TRAINING = ("intercept_calibration/",)


def is_refitted(path: str) -> bool:
    """Whether weight `path` is set after training rather than learned (a warm start leaves it as built)."""
    return path.startswith(REFITTED_AFTER_TRAINING)


def warm_start(
    model: keras.Model,
    source: WarmStartSource,
    partial: bool = False,
    optimizer_state: bool = False,
    method: str | None = None,
) -> dict:
    """Assigns the source's weights to `model` (built, compiled); returns what was restored and what was not.

    `method`: the registered name `model` was built as; with `optimizer_state`, the source's recorded method
    (its checkpoint folder's model_identity.json) must be the same.

    Returns {"source", "kind", "restored": count, "initialized": [path (reason)], "refitted_after_training":
    [path], "ignored": [path], "optimizer_state": bool}. Raises WarmStartError listing the mismatches unless
    `partial`. Weights under REFITTED_AFTER_TRAINING are neither restored nor a mismatch (listed under
    "refitted_after_training"): training never reads them and every run sets them after training.
    """
    # The served intercepts are never carried over: a new day's heads are not yesterday's (and a source written
    # before they existed lacks them); this run refits them after training, or serves its heads as trained.
    values = {path: value for path, value in read_weights(source).items() if not is_refitted(path)}
    target = model.weights_by_path()
    refitted = sorted(path for path in target if is_refitted(path))
    target = {path: variable for path, variable in target.items() if not is_refitted(path)}
    missing = sorted(path for path in target if path not in values)
    ignored = sorted(path for path in values if path not in target)
    matched = [path for path in target if path in values and tuple(values[path].shape) == tuple(target[path].shape)]
    reshaped = sorted(
        f"{path} {list(values[path].shape)} -> {list(target[path].shape)}"
        for path in (set(target) & set(values)) - set(matched)
    )
    mismatched = bool(missing or ignored or reshaped)
    if mismatched and not partial:
        raise WarmStartError(
            f"--warm_start_from={source.given}: the {source.kind}'s weights do not match this model: "
            + _mismatches(missing, reshaped, ignored)
            + ". It was written for another method, architecture or schema; --warm_start_partial starts the "
            "unmatched weights from their initial values."
        )
    if not matched:
        raise WarmStartError(
            f"--warm_start_from={source.given}: no weight of this model is in the {source.kind} with its shape; "
            "there is nothing to start from."
        )
    for path in matched:
        target[path].assign(values[path])
    if optimizer_state:
        _restore_optimizer_state(model, source, mismatched, method)
    initialized = missing + [f"{line} (shape)" for line in reshaped]
    if initialized or ignored:
        logging.warning(
            "Partial warm start from %s: %d weights restored; initial values kept for %s; not in this model: %s.",
            source.describe(),
            len(matched),
            _listed(initialized) or "none",
            _listed(ignored) or "none",
        )
    else:
        logging.info("Warm start from %s: all %d weights restored.", source.describe(), len(matched))
    return {
        "source": source.path,
        "kind": source.kind,
        "restored": len(matched),
        "initialized": initialized,
        "refitted_after_training": refitted,
        "ignored": ignored,
        "optimizer_state": bool(optimizer_state),
    }


def assert_replicas_agree(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Under MultiWorkerMirroredStrategy, fails when workers seeded different weights.

    Each worker resolves and reads the source itself ("the newest
    checkpoint" could change between two workers' reads), and mirrored
    variables are not re-broadcast after an assignment, so the workers
    compare a fingerprint of their weights (an all-reduced mean of a
    position-weighted sum) before training.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return  # one process holds the variables (default strategy; the chief under ParameterServerStrategy)
    weights = list(model.weights_by_path().values())

    @tf.function
    def fingerprints():
        def replica_fingerprint():
            sums = [tf.reduce_sum(tf.cast(w.value, tf.float64)) * (i + 1) for i, w in enumerate(weights)]
            return tf.add_n(sums)

        per_replica = strategy.run(replica_fingerprint)
        return strategy.experimental_local_results(per_replica), strategy.reduce("MEAN", per_replica, axis=None)

    local, mean = fingerprints()
    for value in local:
        if abs(float(value) - float(mean)) > 1e-9 * max(1.0, abs(float(mean))):
            raise WarmStartError(
                f"The workers started from different weights (fingerprint {float(value)!r}, mean over workers "
                f"{float(mean)!r}): the warm-start source changed while they read it. Give a fixed checkpoint "
                "prefix or export version to --warm_start_from."
            )


def _restore_optimizer_state(model, source: WarmStartSource, mismatched: bool, method: str | None) -> None:
    """Restores every optimizer's slots and iteration count from a same-method checkpoint (learning rate kept)."""
    if source.kind != "checkpoint":
        raise WarmStartError(
            f"--warm_start_optimizer: {source.given} is an export, which holds no optimizer state; give a "
            "checkpoint (or the run's model_dir), or drop --warm_start_optimizer."
        )
    if mismatched:
        raise WarmStartError(
            "--warm_start_optimizer needs the weights to match exactly (optimizer slots are stored by position); "
            "drop it for a partial warm start."
        )
    identity_path = os.path.join(os.path.dirname(source.path), model_identity.IDENTITY_FILE)
    recorded = None
    if tf.io.gfile.exists(identity_path):
        with tf.io.gfile.GFile(identity_path) as f:
            recorded = json.load(f).get("model")
    if recorded is None or recorded != method:
        raise WarmStartError(
            f"--warm_start_optimizer: {source.path} was written by {recorded or 'an unrecorded method'}, this is "
            f"{method}; optimizer state is only restored from a checkpoint of the same method."
        )
    optimizers = model.optimizers()
    # A constant rate is a variable the checkpoint would overwrite; a schedule has none (a function of the step).
    learning_rates = [
        (optimizer, float(np.asarray(optimizer.learning_rate)))
        for optimizer in optimizers
        if isinstance(optimizer.learning_rate, keras.Variable)
    ]
    try:
        tf.train.Checkpoint(model=model).read(source.path).expect_partial()
    except (ValueError, tf.errors.OpError) as e:
        raise WarmStartError(f"--warm_start_optimizer: the optimizer state of {source.path} does not fit: {e}") from e
    for optimizer, learning_rate in learning_rates:
        optimizer.learning_rate = learning_rate  # Keras assigns it to the optimizer's learning-rate variable
    logging.info(
        "Restored the state of %d optimizer(s) at iteration %s.",
        len(optimizers),
        [int(optimizer.iterations.numpy()) for optimizer in optimizers],
    )
    if any(isinstance(o.learning_rate, keras.optimizers.schedules.LearningRateSchedule) for o in optimizers):
        # The schedule is a function of the restored step: a per-epoch cosine resumes mid-period unless the
        # source's step count is a multiple of this run's epoch length, so the run's last step may not reach 0.
        logging.warning(
            "--warm_start_optimizer: the learning-rate schedule continues from the restored iteration count; "
            "with --learning_rate_schedule=cosine_per_epoch the first epoch starts mid-period. Leave the "
            "optimizer fresh (the default) or use --learning_rate_schedule=constant for a full period per epoch."
        )


def _mismatches(missing, reshaped, ignored) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing from the source ({_listed(missing)})")
    if reshaped:
        parts.append(f"{len(reshaped)} with another shape ({_listed(reshaped)})")
    if ignored:
        parts.append(f"{len(ignored)} not in this model ({_listed(ignored)})")
    return "; ".join(parts)


def _listed(names) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
