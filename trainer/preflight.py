"""Checks a command runs before any work: the data flags match files that fit the schema, outputs are writable.

Each check costs one record per file or one small write, whatever the data
size, so a mistake in the evaluation files is reported before training, not
after an epoch.
"""

import os
import uuid

import tensorflow as tf
from absl import app, logging

from tfcvr import cli
from tfcvr.data import errors
from tfcvr.data import pipeline as pipeline_lib
from tfcvr.data import schema as schema_lib
from trainer import config as config_lib


def load_schema(path: str, flag: str = "--schema") -> schema_lib.Schema:
    """The schema at `path`; a missing or invalid file is a UsageError naming the flag."""
    if not tf.io.gfile.exists(path):
        raise app.UsageError(f"{flag}={path}: no such file.")
    try:
        return schema_lib.load_schema(path)
    except ValueError as e:
        raise app.UsageError(f"{flag}={path}: {cli.one_line(e)}") from None


def check_files(flag: str, pattern: str, schema: schema_lib.Schema, data: config_lib.DataConfig) -> list:
    """The files `pattern` matches, after the first record of each parsed against `schema`.

    Raises a UsageError naming the flag when a glob matches nothing, a
    DataError naming the file when its first record does not fit the schema,
    the file is not a TFRecord file or holds bytes but no whole record (cut
    short), and a DataError when no file holds a record (every file empty, or
    unreadable from its first record under `data.skip_corrupt_records`).
    Empty files beside others are counted in a warning; under
    `skip_corrupt_records` a file unreadable from its first record is one the
    input skips whole (logged and reported when it is read).
    """
    try:
        files = pipeline_lib.resolve_files(pattern)
    except ValueError as e:
        raise app.UsageError(f"{flag}={pattern}: {e}") from None
    pipeline = pipeline_lib.TFRecordPipeline(files, schema, 1, invalid_conversion=data.invalid_conversion)
    empty, unreadable = [], []
    for path in files:
        try:
            first = [record for record in tf.data.TFRecordDataset(path).take(1)]
        except tf.errors.DataLossError as e:
            if data.skip_corrupt_records:
                unreadable.append(path)
                continue
            raise errors.DataError(
                f"{flag}: {path} is not a readable TFRecord file: {errors.clean_op_message(e)}"
            ) from None
        if not first:
            size = tf.io.gfile.stat(path).length
            if size and data.skip_corrupt_records:
                unreadable.append(path)
            elif size:
                raise errors.DataError(
                    f"{flag}: {path} holds {size} bytes but no whole record: a TFRecord file cut short."
                )
            else:
                empty.append(path)  # an empty shard holds nothing to check
            continue
        try:
            pipeline.parse_batch(tf.reshape(first[0], [1]), tf.constant([f"{path}:0"]))
        except tf.errors.InvalidArgumentError as e:
            raise errors.DataError(
                f"{flag}: record 0 of {path} does not fit the schema: {errors.clean_op_message(e)}"
            ) from None
    if len(empty) + len(unreadable) == len(files):
        raise errors.DataError(
            f"{flag}={pattern}: no matched file holds a readable record ({len(empty)} of {len(files)} empty, "
            f"{len(unreadable)} unreadable from their first record)."
            if unreadable
            else f"{flag}={pattern}: every matched file is empty ({len(files)}, 0 bytes): no records."
        )
    if empty:
        logging.warning("%s: %d of %d files are empty (0 bytes): %s.", flag, len(empty), len(files), ", ".join(empty))
    return files


def required_flag(flag: str, value: str | None) -> str:
    """The value of a required flag (absl refuses to run without one); a UsageError naming `flag` when it is None."""
    if value is None:
        raise app.UsageError(f"{flag} is required.")
    return value


def check_writable_dir(flag: str, path: str) -> None:
    """Creates `path` if needed and writes and removes a probe file in it (local or gs://)."""
    if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        raise app.UsageError(f"{flag}={path} is a file; a folder is expected.")
    probe = os.path.join(path, f".tfcvr-write-check-{uuid.uuid4().hex}")
    try:
        tf.io.gfile.makedirs(path)
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        message = e.message if isinstance(e, tf.errors.OpError) else str(e)
        raise app.UsageError(f"{flag}={path} is not a writable folder: {message}") from None
