"""A TF cluster on localhost: free ports and each task's TF_CONFIG (for tests and the scaling benchmark)."""

import json
import socket


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
