r"""Every registered method under each distributed strategy on localhost: does it train, evaluate and export?

    python benchmarks/strategies.py [--methods all] [--strategies multi_worker_mirrored,parameter_server]

Runs `python -m trainer.task` per method on a small simulated log as a real
local cluster: 2 workers (MultiWorkerMirroredStrategy) or chief + worker + 2
parameter servers (ParameterServerStrategy), and prints one line per run
(status, steps, seconds). The tests cover a few methods per strategy; this
checks all of them (about 20 s per run on 2 cores).
"""

import argparse
import json
import os
import tempfile
import time

from tfcvr import models
from tfcvr.data import simulate
from trainer import local_cluster

LAYOUTS = {
    "multi_worker_mirrored": ({"worker": 2}, [("worker", 0), ("worker", 1)], []),
    "parameter_server": ({"chief": 1, "worker": 1, "ps": 2}, [("chief", 0)], [("worker", 0), ("ps", 0), ("ps", 1)]),
}


def _run(method, strategy, data, root):
    jobs, trainers, servers = LAYOUTS[strategy]
    ports = iter(local_cluster.free_ports(sum(jobs.values())))
    cluster = {job: [f"localhost:{next(ports)}" for _ in range(count)] for job, count in jobs.items()}
    run_dir = tempfile.mkdtemp(prefix=f"{method}-{strategy}-", dir=root)
    args = [
        f"--model={method}",
        f"--train_files={data['train']}",
        f"--eval_files={data['eval']}",
        f"--schema={data['schema']}",
        f"--model_dir={run_dir}/model",
        "--batch_size=256",
        "--embedding_dim=8",
        "--hidden_units=32",
        "--tower_units=16,8",
        "--log_every=1000",
    ]
    started = time.perf_counter()
    background = local_cluster.launch_tasks(cluster, servers, args, run_dir)
    try:
        codes = [p.wait(timeout=600) for p in local_cluster.launch_tasks(cluster, trainers, args, run_dir)]
    finally:
        for process in background:
            process.kill()
    seconds = time.perf_counter() - started
    if codes != [0] * len(codes):
        log = open(os.path.join(run_dir, f"{trainers[0][0]}-0.log")).read()
        return "FAIL", 0, seconds, log.strip().splitlines()[-1][:200]
    with open(os.path.join(run_dir, "model", "metrics.json")) as f:
        report = json.load(f)
    exported = os.path.isdir(os.path.join(run_dir, "model", "export"))
    return ("OK" if exported else "NO EXPORT"), report["training"]["steps"], seconds, ""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="all")
    parser.add_argument("--strategies", default=",".join(LAYOUTS))
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    methods = (
        [n for n in models.names() if models.get(n).registered_name == n]
        if args.methods == "all"
        else args.methods.split(",")
    )
    root = tempfile.mkdtemp(prefix="tfcvr-strategies-")
    data = simulate.write_simulation(os.path.join(root, "data"), args.rows, seed=0, num_shards=4)
    print(f"{'method':<16}{'strategy':<24}{'status':<10}{'steps':>6}{'seconds':>9}")
    failures = 0
    for method in methods:
        for strategy in args.strategies.split(","):
            status, steps, seconds, detail = _run(method, strategy, data, root)
            failures += status != "OK"
            print(f"{method:<16}{strategy:<24}{status:<10}{steps:>6}{seconds:>9.1f}  {detail}", flush=True)
    print(f"\n{failures} failed of {len(methods) * len(args.strategies.split(','))} runs")


if __name__ == "__main__":
    main()
