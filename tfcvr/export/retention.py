"""Version retention: keep the newest N complete versions of an export base."""

from collections.abc import Iterable

import tensorflow as tf
from absl import logging

from tfcvr.export.versions import existing_versions


def retain_versions(export_base: str, keep: int, protect: Iterable[int] = ()) -> list:
    """Deletes all but the newest `keep` complete versions; returns the deleted versions.

    Never deleted: the newest complete version (TF Serving's default policy
    serves it), any version in `protect` (the one just written, or one pinned
    by a version label), and any folder that is not a complete version (a
    hidden `.tmp-*` export in progress, or a version another process is still
    copying in). Deletion goes oldest first.

    Args:
      export_base: the folder TF Serving watches.
      keep: how many complete versions to keep, at least 1.
      protect: versions never deleted, in addition to the newest `keep`.
    """
    if int(keep) < 1:
        raise ValueError(f"--keep_versions must be at least 1 (the newest version is always kept). Received: {keep}")
    complete = existing_versions(export_base, complete_only=True)
    kept = set(complete[-int(keep) :]) | {int(v) for v in protect}
    deleted = []
    for version in complete:
        if version not in kept:
            tf.io.gfile.rmtree(f"{export_base.rstrip('/')}/{version}")
            deleted.append(version)
    if deleted:
        logging.info("Removed export versions %s from %s (keeping %d).", deleted, export_base, keep)
    return deleted
