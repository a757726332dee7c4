"""Opening inputs: local files with Python's buffered IO (fast line iteration), others through tf.io.gfile."""

from typing import BinaryIO

import tensorflow as tf


def is_local(path: str) -> bool:
    return "://" not in path


def open_binary(path: str) -> BinaryIO | tf.io.gfile.GFile:
    if not tf.io.gfile.exists(path):
        raise ValueError(f"Input file {path} does not exist.")
    return open(path, "rb", buffering=1 << 20) if is_local(path) else tf.io.gfile.GFile(path, "rb")


def size(path: str) -> int:
    return tf.io.gfile.stat(path).length
