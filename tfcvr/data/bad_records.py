"""Turning TensorFlow's input errors into messages that name the file and record.

The fast input path parses whole batches without per-record names (carrying
them would cost a sizeable share of the pipeline's throughput). When it fails, the
files are scanned again record by record to find the first bad one, and a
`DataError` names its file, record index, feature and what was expected.
"""

import contextlib
from collections.abc import Callable, Iterable, Iterator

import tensorflow as tf

from tfcvr.data import errors, integrity


def first_bad_record(
    files: Iterable[str],
    parse_batch: Callable[[tf.Tensor, tf.Tensor], dict],
    skip_unreadable: bool = False,
    scan_batch_size: int = 512,
) -> str | None:
    """Finds the first record that cannot be read, or that `parse_batch(serialized, names)` rejects.

    Returns a message naming the file, record index and what was wrong, or None
    when every record of every file reads and parses. With `skip_unreadable`
    the unreadable rest of a file is passed over, as the input passes over it.
    """
    for path in files:
        # What the input reads of the file: all of it, or under skip_unreadable its records before the first bad one.
        limit = integrity.scan([path])[0].records if skip_unreadable else -1
        records = tf.data.TFRecordDataset(path).take(limit).batch(scan_batch_size)
        offset = 0
        iterator = iter(records)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                break
            except tf.errors.DataLossError:
                (found,) = integrity.scan([path])  # the exact record: the batch only bounds it
                return found.damage.describe()
            try:
                parse_batch(batch, _record_names(path, offset, batch.shape[0]))
            except tf.errors.OpError:
                for index in range(batch.shape[0]):
                    name = f"{path}:{offset + index}"
                    try:
                        parse_batch(batch[index : index + 1], tf.constant([name]))
                    except tf.errors.OpError as e:
                        return f"Invalid record {index + offset} in {path}: {errors.clean_op_message(e)}"
            offset += batch.shape[0]
    return None


@contextlib.contextmanager
def named_data_errors(
    files: Iterable[str], parse_batch: Callable[[tf.Tensor, tf.Tensor], dict], skip_unreadable: bool = False
) -> Iterator[None]:
    """Re-raises an input error of the block as a `DataError` naming the bad record (see `first_bad_record`)."""
    try:
        yield
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        if "IteratorGetNext" not in e.message:
            raise  # not raised while reading input (e.g. a model error): no scan
        located = first_bad_record(files, parse_batch, skip_unreadable)
        if located is None:
            raise
        raise errors.DataError(located) from e


def _record_names(path: str, offset: int, count: int) -> tf.Tensor:
    return tf.constant([f"{path}:{offset + i}" for i in range(count)])
