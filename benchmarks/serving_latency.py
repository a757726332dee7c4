r"""Latency of exported models for ranking requests: p50 / p95 / p99 in milliseconds.

    python benchmarks/serving_latency.py [--models naive,ddpo,evi] [--candidates 100,1000] [--requests 300] [--json]

For each model (untrained: latency does not depend on the weights; the
default architecture of `python -m trainer.task` on the simulator's schema),
exports a SavedModel and times one ranking request of N candidates:

* in-process: the loaded SavedModel's `serving_default` on serialized
  tf.Examples, and its `predict` signature on raw feature tensors;
* gRPC: `serving.GrpcPredictionClient` -> `serving.local` PredictionService
  on loopback (protobuf encoding, gRPC and the same SavedModel call).

Requests are sent one at a time after 30 warm-up requests. The TF Serving
binary itself cannot run here (no Docker engine); its own overhead over the
in-process call is comparable to the gRPC stand-in's.
"""

import argparse
import json
import tempfile
import time

import numpy as np
import tensorflow as tf

from serving import GrpcPredictionClient
from serving.local import start_grpc_server
from tfcvr import export, models
from tfcvr.data import example_writer, load_schema, simulate
from tfcvr.export import warmup

WARMUP_REQUESTS = 30


def _percentiles(run, requests):
    for _ in range(WARMUP_REQUESTS):
        run()
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000.0)
    return {f"p{q}": float(np.percentile(times, q)) for q in (50, 95, 99)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="naive,ddpo,evi")
    parser.add_argument("--candidates", default="100,1000")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--json", action="store_true", help="One JSON object per measurement.")
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="tfcvr-latency-")
    schema = load_schema(simulate.write_simulation(f"{out}/data", 1000, seed=0, num_shards=1)["schema"])
    rows = []
    for name in args.models.split(","):
        model = models.build(name, schema)
        parameters = model.count_params()
        base = f"{out}/{name}"
        path = export.export_for_serving(model, schema, base, version=1)
        loaded = tf.saved_model.load(path)
        server, port = start_grpc_server({name: base})
        client = GrpcPredictionClient(f"localhost:{port}", name, timeout=10.0)
        try:
            for size in (int(s) for s in args.candidates.split(",")):
                candidates = warmup.warmup_candidates(schema, size)
                serialized = [example_writer.to_example(c).SerializeToString() for c in candidates]
                examples = tf.constant(serialized)
                features = {f.name: tf.constant([c[f.name] for c in candidates], f.tf_dtype) for f in schema.features}
                default, predict = loaded.signatures["serving_default"], loaded.signatures["predict"]
                # Each request is timed within this iteration, so the closures see this size's inputs.
                paths = {
                    "in-process serving_default": lambda: default(examples=examples),  # noqa: B023
                    "in-process predict": lambda: predict(**features),  # noqa: B023
                    "gRPC serving_default": lambda: client.predict(serialized),  # noqa: B023
                }
                for path_name, run in paths.items():
                    row = {
                        "model": name,
                        "parameters": parameters,
                        "candidates": size,
                        "path": path_name,
                        **_percentiles(run, args.requests),
                    }
                    rows.append(row)
                    if args.json:
                        print(json.dumps(row), flush=True)
        finally:
            client.close()
            server.stop(None).wait()
    if not args.json:
        print(f"{args.requests} sequential requests per row after {WARMUP_REQUESTS} warm-up; milliseconds")
        print(f"{'model':<10}{'params':>10}{'candidates':>12}  {'path':<28}{'p50':>8}{'p95':>8}{'p99':>8}")
        for row in rows:
            print(
                f"{row['model']:<10}{row['parameters']:>10}{row['candidates']:>12}  {row['path']:<28}"
                f"{row['p50']:>8.2f}{row['p95']:>8.2f}{row['p99']:>8.2f}"
            )


if __name__ == "__main__":
    main()
