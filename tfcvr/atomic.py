"""Writing a file that no reader sees half-written, on local disks and object stores.

The contents go to a temporary file beside the target, which is then renamed
over it: a local rename is atomic, and on gs:// a rename copies one object,
which appears whole or not at all. A write that fails (a full disk, a failing
store) leaves the previous file as it was and removes its temporary file.
"""

import os
import uuid

import tensorflow as tf
from absl import logging


def write_file(path: str, contents: str | bytes) -> None:
    """Writes `contents` (text or bytes) to `path` (local or gs://) through a temporary file renamed over it."""
    folder, name = os.path.split(path)
    # A leading dot and no final suffix: globs of the real files (e.g. "*.json") do not match it.
    temporary = os.path.join(folder, f".{name}.tmp-{uuid.uuid4().hex}")
    try:
        with tf.io.gfile.GFile(temporary, "wb" if isinstance(contents, bytes) else "w") as f:
            f.write(contents)
        tf.io.gfile.rename(temporary, path, overwrite=True)
    finally:
        try:
            if tf.io.gfile.exists(temporary):  # the write or the rename failed (on gs://, a copy then a delete)
                tf.io.gfile.remove(temporary)
        except tf.errors.OpError as e:  # the write's own error, if any, is the one to see
            logging.warning("Could not remove the temporary file %s: %s", temporary, e.message.splitlines()[0])
