"""Which process writes: only the chief writes to the real paths.

Under multi-worker strategies every worker must take part in saving (the
save is collective), but only the chief's copy is real; the others write to
their own temporary folders, which `cleanup_worker_dir` removes. Single
process: the process is the chief.
"""

import os
import tempfile

import tensorflow as tf


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    # Without a "chief" job, worker 0 is the chief (MultiWorkerMirroredStrategy's convention).
    return task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


def writable_dir(path: str, strategy: tf.distribute.Strategy) -> str:
    """`path` for the chief; a private temporary folder for any other worker."""
    if is_chief(strategy):
        return path
    resolver = strategy.cluster_resolver
    return tempfile.mkdtemp(prefix=f"tfcvr-{resolver.task_type}-{resolver.task_id}-{os.path.basename(path)}-")


def cleanup_worker_dir(path: str, real_path: str) -> None:
    """Removes a non-chief worker's temporary folder (never the real path)."""
    if path != real_path and tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)
