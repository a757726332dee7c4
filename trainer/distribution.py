"""The distribution strategy from the environment, and which process writes.

Strategy: Vertex AI (and any TF cluster launcher) describes the job in
TF_CONFIG: no cluster (or one task) -> the default strategy; chief/workers
only -> MultiWorkerMirroredStrategy; a "ps" job -> ParameterServerStrategy,
with variables of at least `min_shard_bytes` (the embedding tables) split
across the parameter servers. Vertex AI's CLUSTER_SPEC is read when TF_CONFIG
is absent (workerpool0 = chief, 1 = workers, 2 = parameter servers).

Writes: under multi-worker strategies every worker must take part in saving
(the save is collective), but only the chief's copy is real; the others write
to their own temporary folders, which `cleanup_worker_dir` removes. Single
process: the process is the chief.
"""

import atexit
import dataclasses
import enum
import json
import os
import shutil
import tempfile
from collections.abc import Mapping

import tensorflow as tf
from absl import logging


class StrategyKind(enum.StrEnum):
    """The distribution strategies a run can use (the values are --strategy's)."""

    DEFAULT = "default"
    MULTI_WORKER_MIRRORED = "multi_worker_mirrored"
    PARAMETER_SERVER = "parameter_server"


STRATEGIES = ("auto", *(kind.value for kind in StrategyKind))
# Vertex AI worker pools, in order (its CLUSTER_SPEC): chief, workers, parameter servers, reduction server.
_VERTEX_POOLS = ("chief", "worker", "ps")


def tf_config(environ: Mapping[str, str] | None = None) -> dict:
    """TF_CONFIG as a dict ({} when unset), or built from Vertex AI's CLUSTER_SPEC."""
    environ = os.environ if environ is None else environ
    if environ.get("TF_CONFIG"):
        try:
            config = json.loads(environ["TF_CONFIG"])
        except ValueError as e:
            raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e
        if not isinstance(config, dict):
            raise ValueError(f"TF_CONFIG must be a JSON object with 'cluster' and 'task'. Received: {config!r}")
        return config
    if environ.get("CLUSTER_SPEC"):
        spec = json.loads(environ["CLUSTER_SPEC"])
        cluster = {
            _VERTEX_POOLS[int(pool[len("workerpool") :])]: list(tasks)
            for pool, tasks in spec.get("cluster", {}).items()
            if pool.startswith("workerpool") and int(pool[len("workerpool") :]) < len(_VERTEX_POOLS)
        }
        task = spec.get("task", {})
        pool = task.get("type", "workerpool0")
        return {
            "cluster": cluster,
            "task": {"type": _VERTEX_POOLS[int(pool[len("workerpool") :])], "index": int(task.get("index", 0))},
        }
    return {}


def strategy_name(config: dict, override: str = "auto") -> StrategyKind:
    """The strategy a TF_CONFIG calls for (`override` other than "auto" wins)."""
    if override not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {STRATEGIES}. Received: {override!r}")
    if override != "auto":
        return StrategyKind(override)
    cluster = config.get("cluster", {})
    if cluster.get("ps"):
        return StrategyKind.PARAMETER_SERVER
    if len(cluster.get("chief", [])) + len(cluster.get("worker", [])) > 1:
        return StrategyKind.MULTI_WORKER_MIRRORED
    return StrategyKind.DEFAULT


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where this process trains: the strategy, decided once, and what follows from it."""

    kind: StrategyKind
    strategy: tf.distribute.Strategy

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def is_chief(self) -> bool:
        return is_chief(self.strategy)

    @property
    def distributed(self) -> bool:
        """More than this process trains: workers must agree on the steps of an epoch."""
        return self.kind is not StrategyKind.DEFAULT

    @property
    def static_input_shards(self) -> bool:
        """Each worker reads its own share of the files (not under ParameterServerStrategy, whose coordinator
        hands steps to whichever worker is free, so each worker reads every file in its own random order)."""
        return self.kind is not StrategyKind.PARAMETER_SERVER

    @property
    def splits_input_across_workers(self) -> bool:
        return self.kind is StrategyKind.MULTI_WORKER_MIRRORED


def is_server_task(kind: StrategyKind, config: dict) -> bool:
    """A ParameterServerStrategy worker or parameter server: it serves the chief's steps and trains nothing itself."""
    return kind is StrategyKind.PARAMETER_SERVER and config.get("task", {}).get("type") in ("worker", "ps")


def make_strategy(name: str, config: dict, min_shard_bytes: int = 256 << 10) -> tf.distribute.Strategy:
    """The strategy `name` for this process (create it first thing: collectives need it early)."""
    if name == StrategyKind.DEFAULT:
        return tf.distribute.get_strategy()
    if name == StrategyKind.MULTI_WORKER_MIRRORED:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == StrategyKind.PARAMETER_SERVER:
        num_ps = len(config.get("cluster", {}).get("ps", []))
        if not num_ps:
            raise ValueError("--strategy=parameter_server needs a 'ps' job in TF_CONFIG.")
        partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
            min_shard_bytes=min_shard_bytes, max_shards=num_ps
        )
        return tf.distribute.experimental.ParameterServerStrategy(
            tf.distribute.cluster_resolver.TFConfigClusterResolver(), variable_partitioner=partitioner
        )
    raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}.")


def run_server(config: dict) -> None:
    """Runs this process's tf.distribute.Server forever (ParameterServerStrategy's workers and ps)."""
    task = config["task"]
    logging.info("Starting the %s %d server of the parameter-server job.", task["type"], task["index"])
    server = tf.distribute.Server(
        tf.train.ClusterSpec(config["cluster"]),
        job_name=task["type"],
        task_index=int(task["index"]),
        protocol="grpc",
        start=True,
    )
    server.join()


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
    private = tempfile.mkdtemp(prefix=f"tfcvr-{resolver.task_type}-{resolver.task_id}-{os.path.basename(path)}-")
    atexit.register(shutil.rmtree, private, ignore_errors=True)  # whatever the worker wrote there is discarded
    return private


def cleanup_worker_dir(path: str, real_path: str) -> None:
    """Removes a non-chief worker's temporary folder (never the real path)."""
    if path != real_path and tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)
