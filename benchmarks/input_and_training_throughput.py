r"""Examples/s of the input pipeline alone and of training each registered method.

    python benchmarks/input_and_training_throughput.py [--rows 400000] [--batch_size 2048]

Simulates a log once, then measures (median of 3 passes after a warm-up pass):
the TFRecord pipeline alone (parse + validate + hash), and one training epoch
per registered model x backbone through trainer.loop.TrainingLoop.
"""

import argparse
import statistics
import tempfile
import time

import keras
import tensorflow as tf

from tfcvr import models
from tfcvr.data import TFRecordPipeline, load_schema, simulate
from trainer.loop import TrainingLoop


def _median_rate(run, repeats=3):
    run()  # warm-up: tracing, file cache
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        examples = run()
        rates.append(examples / (time.perf_counter() - start))
    return statistics.median(rates), rates


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--batch_size", type=int, default=2048)
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="tfcvr-bench-")
    paths = simulate.write_simulation(out, args.rows, seed=0, num_shards=8)
    schema = load_schema(paths["schema"])
    pipeline = TFRecordPipeline(paths["train"], schema, args.batch_size, shuffle=True, seed=0)

    def read_all():
        return sum(int(labels["click"].shape[0]) for _, labels in pipeline.dataset())

    median, rates = _median_rate(read_all)
    print(f"input pipeline: {median:,.0f} examples/s  (runs: {', '.join(f'{r:,.0f}' for r in rates)})")
    for name in models.names():
        for backbone in ("shared_bottom", "mmoe"):
            model = models.build(name, schema, backbone=backbone)
            model.compile(optimizer=keras.optimizers.Adam(1e-3))
            model.build_optimizers()
            loop = TrainingLoop(model, tf.distribute.get_strategy(), tempfile.mkdtemp(), log_every=10**9,
                                checkpoint_every=10**9)
            epochs = iter(range(1, 100))

            def train_epoch():
                return loop.train(lambda context, epoch: pipeline.dataset(epoch_index=epoch), next(epochs), args.batch_size)["steps"] \
                    * args.batch_size

            median, rates = _median_rate(train_epoch)
            print(f"train {name:>8} {backbone:>13}: {median:,.0f} examples/s  "
                  f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
