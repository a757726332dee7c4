r"""Training examples/s with 1 and 2 local MultiWorkerMirroredStrategy workers on loopback.

    python benchmarks/scaling.py [--model esmm] [--rows 200000] [--batch_size 2048] [--steps 60]

Each configuration runs `python -m trainer.task` (one process per worker,
TF_CONFIG on free localhost ports) on the same simulated log for `--steps`
steps and reads the chief's examples/s from its metrics.json (whole training
time, including the first steps' tracing). On a 2-core machine two workers
share the cores, so this measures the overhead of the collective all-reduce
more than any speed-up; run it on real machines for scaling numbers.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from tfcvr.data import simulate
from trainer import local_cluster


def _run(workers, data, args, root):
    model_dir = tempfile.mkdtemp(prefix=f"workers-{workers}-", dir=root)
    command = [
        sys.executable,
        "-m",
        "trainer.task",
        f"--model={args.model}",
        f"--train_files={data['train']}",
        f"--eval_files={data['eval']}",
        f"--schema={data['schema']}",
        f"--model_dir={model_dir}",
        f"--batch_size={args.batch_size}",
        f"--steps_per_epoch={args.steps}",
        "--noexport",
        f"--log_every={args.steps}",
    ]
    cluster = {"worker": [f"localhost:{p}" for p in local_cluster.free_ports(workers)]}
    processes = []
    for index in range(workers):
        env = dict(os.environ)
        if workers > 1:
            env["TF_CONFIG"] = local_cluster.tf_config(cluster, "worker", index)
        processes.append(
            subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        )
    for process in processes:
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{workers} worker(s) failed:\n{stderr[-3000:]}")
    with open(os.path.join(model_dir, "metrics.json")) as f:
        return json.load(f)["training"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="esmm")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch_size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="tfcvr-scaling-")
    data = simulate.write_simulation(os.path.join(root, "data"), args.rows, seed=0, num_shards=8)
    print(f"{args.model}, global batch {args.batch_size}, {args.steps} steps, {os.cpu_count()} CPU cores")
    print(f"{'workers':>8}{'examples/s':>14}{'seconds':>10}")
    for workers in (1, 2):
        training = _run(workers, data, args, root)
        print(f"{workers:>8}{training['examples_per_second']:>14.0f}{training['seconds']:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
