"""Opening inputs: local files with Python's buffered IO (fast line iteration), others through tf.io.gfile."""

from collections.abc import Iterator
from typing import BinaryIO

import tensorflow as tf

from tfcvr.data.convert.report import Progress


def is_local(path: str) -> bool:
    return "://" not in path


def open_binary(path: str) -> BinaryIO | tf.io.gfile.GFile:
    if not tf.io.gfile.exists(path):
        raise ValueError(f"Input file {path} does not exist.")
    return open(path, "rb", buffering=1 << 20) if is_local(path) else tf.io.gfile.GFile(path, "rb")


def size(path: str) -> int:
    return tf.io.gfile.stat(path).length


def lines(path: str, progress: Progress | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, raw bytes with newline) of a file, reporting bytes read to `progress`.

    The one loop every line-based converter and index reads through; the
    progress bar gets a final forced update when the file ends.
    """
    consumed = 0
    with open_binary(path) as f:
        for line_number, raw in enumerate(f, start=1):
            consumed += len(raw)
            if progress is not None:
                progress.update(consumed)
            yield line_number, raw
    if progress is not None:
        progress.update(consumed, force=True)
