"""How many threads one TensorFlow op may use (`--intra_op_threads`), set before TensorFlow starts.

TensorFlow splits each large op over every core (the intra-op pool) and runs
independent ops side by side (the inter-op pool). A CVR ranker's step is
many small ops (23 embedding lookups, towers of 64-32 units, a fused Adam
update per table), and on a machine with two cores splitting each of them
costs more in hand-offs than it gains: with one thread per op the two cores
run two ops at once instead. `benchmarks/throughput.py` measures it
(docs/benchmarks.md "Training speed"). On larger machines no measurement
here says which is faster, so "auto" keeps TensorFlow's default there. The
setting changes which thread computes what, not what is computed (only the
order of a parallel sum's float additions may differ).
"""

import os

import tensorflow as tf
from absl import logging

AUTO = 0
# "auto" uses one thread per op on machines with at most this many cores (the only size measured).
SINGLE_THREAD_MAX_CORES = 2
ENVIRONMENT_VARIABLE = "TF_NUM_INTRAOP_THREADS"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which a container's cpuset limits), else all cores."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resolve(requested: int, cores: int, environment: str | None) -> int | None:
    """The intra-op thread count to set, or None to leave TensorFlow's choice.

    `requested` > 0 is taken as given; `AUTO` (0) gives 1 on at most
    `SINGLE_THREAD_MAX_CORES` cores unless the environment variable
    `TF_NUM_INTRAOP_THREADS` (`environment`) already says, else None.
    """
    if requested < 0:
        raise ValueError(f"--intra_op_threads must be 0 (auto) or positive. Received: {requested}")
    if requested > 0:
        return requested
    if environment:
        return None  # the user's own TF_NUM_INTRAOP_THREADS, which TensorFlow reads itself
    return 1 if cores <= SINGLE_THREAD_MAX_CORES else None


def configure(requested: int = AUTO) -> int | None:
    """Sets the intra-op thread count `resolve` gives; returns the count in force (None: TensorFlow's default).

    Must run before TensorFlow executes its first op. Afterwards (a caller
    that ran TensorFlow in the same process first) an explicit count that
    differs raises `RuntimeError` naming the flag, and "auto" keeps the
    running count with a warning: it is a speed setting, not a result.
    """
    threads = resolve(requested, available_cores(), os.environ.get(ENVIRONMENT_VARIABLE))
    if threads is None:
        return None
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError as e:
        running = tf.config.threading.get_intra_op_parallelism_threads()
        if requested == AUTO:
            logging.warning(
                "--intra_op_threads=0 (auto) would use %d thread(s) per op, but TensorFlow already runs in this "
                "process (%d; 0 is its default): kept.",
                threads,
                running,
            )
            return running or None  # 0 is TensorFlow's default, which this function reports as None
        raise RuntimeError(
            f"--intra_op_threads={requested} (resolved to {threads}) must be set before TensorFlow runs its "
            f"first op; TensorFlow has already started with {running} intra-op threads (0: its default) ({e})."
        ) from e
    return threads  # logged by the caller, once its command line is checked
