"""The error for invalid input data, and TensorFlow's op messages made readable."""

import re

import tensorflow as tf


class DataError(ValueError):
    """Invalid input data; the message names the file, record and feature."""


_OP_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\](\s*name:\s*)?")


def clean_op_message(error: tf.errors.OpError) -> str:
    """The human part of an op error, without function-node and op decorations."""
    return _OP_NOISE.sub("", error.message).strip()
