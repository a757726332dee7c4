"""Turning TensorFlow's input errors into messages that name the file and record.

The fast input path parses whole batches without per-record names (carrying
them would cost a sizeable share of the pipeline's throughput). When it fails, the
files are scanned again record by record to find the first bad one, and a
`DataError` names its file, record index, feature and what was expected.
"""

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator

import tensorflow as tf


class DataError(ValueError):
    """Invalid input data; the message names the file, record and feature."""


_OP_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\](\s*name:\s*)?")


def clean_op_message(error: tf.errors.OpError) -> str:
    """The human part of an op error, without function-node and op decorations."""
    return _OP_NOISE.sub("", error.message).strip()


def first_bad_record(
    files: Iterable[str], parse_batch: Callable[[tf.Tensor, tf.Tensor], dict], scan_batch_size: int = 512
) -> str | None:
    """Finds the first record that `parse_batch(serialized, names)` rejects.

    Returns a message naming the file, record index and what was wrong, or None
    when every record of every file parses.
    """
    for path in files:
        records = tf.data.TFRecordDataset(path).batch(scan_batch_size)
        offset = 0
        iterator = iter(records)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                break
            except tf.errors.DataLossError as e:
                index = _first_unreadable(path, offset)
                return (
                    f"TFRecord file {path} is corrupt or truncated at record {index} (the records before it read "
                    f"whole): {clean_op_message(e)}"
                )
            try:
                parse_batch(batch, _record_names(path, offset, batch.shape[0]))
            except tf.errors.OpError:
                for index in range(batch.shape[0]):
                    name = f"{path}:{offset + index}"
                    try:
                        parse_batch(batch[index : index + 1], tf.constant([name]))
                    except tf.errors.OpError as e:
                        return f"Invalid record {index + offset} in {path}: {clean_op_message(e)}"
            offset += batch.shape[0]
    return None


@contextlib.contextmanager
def named_data_errors(files: Iterable[str], parse_batch: Callable[[tf.Tensor, tf.Tensor], dict]) -> Iterator[None]:
    """Re-raises an input error of the block as a `DataError` naming the bad record."""
    try:
        yield
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        if "IteratorGetNext" not in e.message:
            raise  # not raised while reading input (e.g. a model error): no scan
        located = first_bad_record(files, parse_batch)
        if located is None:
            raise
        raise DataError(located) from e


def _first_unreadable(path: str, start: int) -> int:
    """The index of the first record of `path` at or after `start` that cannot be read (one record at a time)."""
    index = start
    try:
        for _ in tf.data.TFRecordDataset(path).skip(start):
            index += 1
    except tf.errors.DataLossError:
        return index
    return index  # read whole one at a time: the batch's error came at its end


def _record_names(path: str, offset: int, count: int) -> tf.Tensor:
    return tf.constant([f"{path}:{offset + i}" for i in range(count)])
