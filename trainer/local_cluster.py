"""A TF cluster on localhost: free ports and each task's TF_CONFIG (for tests and the scaling benchmark)."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterable


def free_ports(count: int) -> list:
    """`count` TCP ports free on localhost right now (bound together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(cluster: dict, task_type: str, index: int) -> str:
    """The TF_CONFIG value of one task of `cluster` ({job: ["host:port", ...]})."""
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def launch_tasks(
    cluster: dict, tasks: Iterable[tuple[str, int]], args: list[str], log_dir: str, env: dict | None = None
) -> list:
    """Starts `python -m trainer.task ARGS` for each (task type, index) with its TF_CONFIG; returns the Popens.

    Each task's output goes to `<log_dir>/<type>-<index>.log`; `env` adds environment variables.
    """
    processes = []
    for task_type, index in tasks:
        task_env = {**os.environ, **(env or {}), "TF_CONFIG": tf_config(cluster, task_type, index)}
        with open(os.path.join(log_dir, f"{task_type}-{index}.log"), "w") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "trainer.task", *args], env=task_env, stdout=log, stderr=subprocess.STDOUT
                )
            )
    return processes
