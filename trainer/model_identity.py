"""What a checkpoint folder holds: the settings that shape the model, recorded by the first run, checked by the rest.

A run restores the newest checkpoint of its folder. Without a check, a run
with another method or architecture in the same folder would restore weights
that fit its graph (esmm's fit naive's) and continue from them as if they
were its own. The identity is the method's name and its full constructor
configuration (architecture and method arguments, defaults included), the
schema's fingerprint and the package version; everything else (files,
epochs, batch size, learning rate, logging) may change between runs, so a
finished run restarted with more epochs continues.
"""

import dataclasses
import hashlib
import json
import os

import tensorflow as tf
from absl import app, logging

import tfcvr
from tfcvr import atomic
from tfcvr.models.base import Architecture

IDENTITY_FILE = "model_identity.json"
# Measured on each run's training data, not chosen: a new day's data changes them, the checkpoint still fits.
DATA_STATISTICS = ("numeric_statistics", "label_rates")
# Not part of what the checkpoint is: recorded, a change only logged.
INFORMATIONAL = ("tfcvr_version",)
# As a recorded configuration holds them (JSON: lists for tuples); the backbone's default is the method's own.
ARCHITECTURE_DEFAULTS = {
    field.name: list(field.default) if isinstance(field.default, tuple) else field.default
    for field in dataclasses.fields(Architecture)
    if field.name != "backbone"
}


def model_identity(model_name: str, model_config: dict) -> dict:
    """The identity of a model built as `model_name` with `model_config` (its `get_config()`)."""
    config = {
        k: v for k, v in model_config.items() if k != "schema" and k not in DATA_STATISTICS
    }  # the schema: by fingerprint
    schema = json.dumps(model_config["schema"], sort_keys=True).encode()
    return {
        "model": model_name,
        "config": json.loads(json.dumps(config, sort_keys=True)),  # tuples -> lists, as read back from the file
        "schema_fingerprint": hashlib.sha256(schema).hexdigest()[:16],
        "tfcvr_version": tfcvr.__version__,
    }


def differences(recorded: dict, current: dict) -> list:
    """["field: recorded -> current", ...] over the fields that shape the model."""
    lines = []
    for key in sorted(set(recorded) | set(current)):
        if key in INFORMATIONAL:
            continue
        before, after = recorded.get(key), current.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            lines += [
                f"{key}.{name}: {before.get(name)!r} -> {after.get(name)!r}"
                for name in sorted(set(before) | set(after))
                if before.get(name) != after.get(name)
            ]
        elif before != after:
            lines.append(f"{key}: {before!r} -> {after!r}")
    return lines


def check_or_record(checkpoint_dir: str, identity: dict, write: bool, model_dir_flag: str = "--model_dir") -> None:
    """Refuses a checkpoint folder written for another model; records `identity` in a new one (when `write`).

    Raises a UsageError listing each differing field and the ways out.
    """
    path = os.path.join(checkpoint_dir, IDENTITY_FILE)
    has_checkpoints = tf.io.gfile.isdir(checkpoint_dir) and tf.train.latest_checkpoint(checkpoint_dir) is not None
    # Without a checkpoint there is nothing to protect: a run that failed before its first save may be corrected.
    if has_checkpoints and tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            recorded = json.load(f)
        changed = differences(_with_defaults(recorded), _with_defaults(identity))
        if changed:
            raise app.UsageError(
                f"{checkpoint_dir} holds checkpoints of another model ({'; '.join(changed)}). Train this one in a "
                f"new {model_dir_flag} (add --warm_start_from={checkpoint_dir} to start from these weights), or "
                f"remove {checkpoint_dir} to start over."
            )
        if recorded.get("tfcvr_version") != identity["tfcvr_version"]:
            logging.warning(
                "%s was written by tfcvr %s; this is %s.",
                checkpoint_dir,
                recorded.get("tfcvr_version"),
                identity["tfcvr_version"],
            )
        return
    if has_checkpoints:
        raise app.UsageError(
            f"{checkpoint_dir} holds checkpoints without a recorded model identity ({IDENTITY_FILE}): "
            f"they cannot be checked against this run. Use a new {model_dir_flag}."
        )
    if write:
        tf.io.gfile.makedirs(checkpoint_dir)
        atomic.write_file(path, json.dumps(identity, indent=2, sort_keys=True) + "\n")


def _with_defaults(identity: dict) -> dict:
    """`identity` with each architecture field it lacks at its default: a field added after a record was written
    had, for every model then, the value that is now its default."""
    return {**identity, "config": {**ARCHITECTURE_DEFAULTS, **identity.get("config", {})}}
