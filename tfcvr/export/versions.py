"""Integer version folders under an export base, TF Serving's layout."""

import time

import tensorflow as tf

# A version TF Serving can load has its graph written; the rename makes this atomic for tfcvr's own exports.
SAVED_MODEL_FILE = "saved_model.pb"


def existing_versions(export_base: str, complete_only: bool = False) -> list:
    """Integer version folders under `export_base`, ascending (with `complete_only`, those holding a SavedModel)."""
    if not tf.io.gfile.isdir(export_base):
        return []
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(export_base))
    versions = sorted(int(name) for name in names if name.isdigit())
    if complete_only:
        versions = [v for v in versions if tf.io.gfile.exists(f"{export_base.rstrip('/')}/{v}/{SAVED_MODEL_FILE}")]
    return versions


def next_version(export_base: str) -> int:
    """The current Unix time in seconds, or one more than the newest version if that is larger."""
    versions = existing_versions(export_base)
    return max([int(time.time())] + [v + 1 for v in versions])
