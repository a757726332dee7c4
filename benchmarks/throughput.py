r"""Training throughput per method from TFRecord, at the official DDPO code's configuration.

    python benchmarks/throughput.py [--models ddpo,esmm] [--optimizer adam|lazy_adam] [--backbone mmoe|ple]
        [--interaction cross|dot]
        [--steps_per_execution 16] [--cache] [--intra_op_threads 0]
        [--rows 400000] [--steps 200] [--warmup 30] [--data_dir DIR] [--json]
        [--official_ddpo CHECKOUT --torch_python PYTHON]

Data: Ali-CCP-shaped simulated TFRecords (23 int64 id fields with the real
Ali-CCP cardinalities capped at 100k, Zipf(1.1) ids, ~4% CTR, ~0.9% CVR on
clicks). Model: the official DDPO PyTorch code's configuration (embedding 5,
backbone 128-64, towers 64-32, batch 2048), each method at the defaults of
`python -m trainer.task` (Adam 1e-3, the default schedule).

The official code (TL-UESTC/DDPO; Su et al., SIGIR 2024,
https://doi.org/10.1145/3626772.3657817) is timed in the same run on the same
rows written as its Ali-CCP CSV, when --official_ddpo names a checkout of it
and --torch_python a Python with PyTorch (benchmarks/official_ddpo.py says
how it is run: unmodified, its own DataLoader with 4 workers); without them
that column is skipped with a message. Its row is "official_ddpo", and the
table ends with ddpo's rate over it.

For each model: the real input pipeline (`TFRecordPipeline`: read, parse,
hash, batch; repeated) feeds `TrainingLoop.execute`, the traced steps
`python -m trainer.task` runs, --steps_per_execution per call; after
--warmup steps (tracing), --steps steps are timed call by call (including
the wait for input) and the median time per step gives examples/s (`mean_examples_per_s`: from the mean step time,
which includes the rarer steps that wait for the next shuffle window). The
input pipeline alone is timed over the same number of batches; it delivers
a shuffle window (8 batches) at a time, so its rate is from the mean.
With --cache the pipeline parses the records once into memory
(`TFRecordPipeline(cache=True)`, trainer.task --cache_input) before timing:
the rates of a second and later epoch; the input line adds `cache_fill_s`.
Prints a table (ending with the input pipeline's rate over the fastest
method's, the slowest method's share of it, and ddpo over the official
code), or with --json one JSON object per line
({"model", "examples_per_s", "mean_examples_per_s", "median_step_ms",
"p10_step_ms", "p90_step_ms", "parameters", ...}). Run on an idle machine: a second busy process halves
every number.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfcvr import models, optimizers
from tfcvr.data import TFRecordPipeline, example_writer
from tfcvr.data import schema as schema_lib
from trainer import threads
from trainer.loop import STEPS_PER_EXECUTION, TrainingLoop

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import step_times  # noqa: E402

# Distinct values per Ali-CCP field (shared/data/FORMATS.md §1.6), capped at 100k.
CARDINALITIES = {
    "101": 238_635,
    "121": 98,
    "122": 14,
    "124": 3,
    "125": 8,
    "126": 4,
    "127": 4,
    "128": 3,
    "129": 5,
    "109_14": 5_853,
    "110_14": 105_622,
    "127_14": 53_843,
    "150_14": 31_858,
    "205": 467_298,
    "206": 6_929,
    "207": 263_942,
    "210": 80_232,
    "216": 106_399,
    "508": 5_888,
    "509": 104_830,
    "702": 51_878,
    "853": 37_148,
    "301": 3,
}
CAP = 100_000
ARCHITECTURE = {"embedding_dim": 5, "hidden_units": (128, 64), "tower_units": (64, 32)}


def aliccp_shaped_schema() -> schema_lib.Schema:
    features = tuple(
        schema_lib.Feature(name=f"f{name}", type="categorical", dtype="int64", num_buckets=min(size, CAP))
        for name, size in CARDINALITIES.items()
    )
    return schema_lib.Schema(features=features, labels={"click": "click", "conversion": "conversion"})


def write_data(out_dir: str, rows: int, seed: int = 0, num_shards: int = 8) -> str:
    """Ali-CCP-shaped TFRecords (`simulate_columns`) in `out_dir`; returns their glob."""
    example_writer.write_sharded(simulate_columns(rows, seed), os.path.join(out_dir, "train"), num_shards)
    return os.path.join(out_dir, "train-*.tfrecord")


def write_official_csv(path: str, rows: int, seed: int = 0) -> None:
    """The same rows as `write_data`'s as the official DDPO code's Ali-CCP CSV: click, conversion, the id fields."""
    columns = simulate_columns(rows, seed)
    order = ["click", "conversion", *(f"f{name}" for name in CARDINALITIES)]
    table = np.stack([columns[name] for name in order], axis=1)
    np.savetxt(path, table, fmt="%d", delimiter=",", header=",".join(order), comments="")


def simulate_columns(rows: int, seed: int = 0) -> dict:
    """Zipf ids per Ali-CCP field, clicks and conversions from a logistic model of a few fields."""
    rng = np.random.default_rng(seed)
    columns = {}
    for name, size in CARDINALITIES.items():
        size = min(size, CAP)
        columns[f"f{name}"] = (rng.zipf(1.1, rows) - 1) % size
    signal = sum(np.sin(columns[f"f{name}"] * 0.37 + i) for i, name in enumerate(("205", "101", "216")))
    click = rng.random(rows) < 1 / (1 + np.exp(-(signal - 4.2)))
    conversion = click & (rng.random(rows) < 1 / (1 + np.exp(-(0.8 * signal - 5.0))))
    columns["click"], columns["conversion"] = click.astype(np.int64), conversion.astype(np.int64)
    return columns


def _timed(step, count):
    times = []
    for _ in range(count):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def training_batches(files, schema, batch_size, cache=False):
    """An endless iterator over the training pipeline's batches (with `cache`, filled before it returns)."""
    return iter(
        TFRecordPipeline(files, schema, batch_size, shuffle=True, seed=0, drop_remainder=True, cache=cache).dataset(
            epochs=None
        )
    )


def measure_input(files, schema, batch_size, warmup, steps, cache=False) -> dict:
    start = time.perf_counter()
    iterator = training_batches(files, schema, batch_size, cache)
    fill = {"cache_fill_s": round(time.perf_counter() - start, 2)} if cache else {}
    _timed(lambda: next(iterator), warmup)
    # The pipeline parses a shuffle window (8 batches) at a time, so its batches arrive in bursts: its rate is
    # total time over the timed batches, not the median gap.
    return {
        "model": "input_pipeline",
        **step_times.summary(_timed(lambda: next(iterator), steps), batch_size, rate_of="mean"),
        **fill,
    }


def measure_model(
    name,
    files,
    schema,
    batch_size,
    warmup,
    steps,
    optimizer="adam",
    backbone=None,
    steps_per_execution=STEPS_PER_EXECUTION,
    cache=False,
    interaction="none",
) -> dict:
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    chosen = {"backbone": backbone} if backbone else {}
    model = models.build(name, schema, **ARCHITECTURE, **chosen, interaction=interaction)
    # The default schedule; the timed steps as its period should it be cosine_per_epoch (same cost per step).
    model.compile(optimizer=optimizers.make_optimizer(optimizer, 1e-3, steps_per_epoch=warmup + steps))
    loop = TrainingLoop(
        model,
        tf.distribute.get_strategy(),
        tempfile.mkdtemp(prefix="throughput-"),
        log_every=10**9,
        checkpoint_every=10**9,
        steps_per_execution=steps_per_execution,
    )
    iterator = training_batches(files, schema, batch_size, cache)
    # Staged methods (UKD) are timed in their main stage, the one --epochs counts.
    stage = model.training_stages(1)[-1][0]

    def one_execution():
        _, totals = loop.execute(stage, iterator, steps_per_execution)
        float(totals["loss"])  # wait for the steps to finish

    executions = max(1, steps // steps_per_execution)
    _timed(one_execution, max(1, warmup // steps_per_execution) + 1)  # + 1: the first call traces twice
    times = [t / steps_per_execution for t in _timed(one_execution, executions)]
    return {
        "model": name,
        **step_times.summary(times, batch_size),
        "parameters": int(model.count_params()),
        "batch_size": batch_size,
        "stage": stage,
        "optimizer": optimizer,
        "backbone": model.get_config()["backbone"],
        "interaction": interaction,
        "steps_per_execution": steps_per_execution,
        "cache": cache,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),  # 0: TensorFlow's default
    }


def measure_official_ddpo(checkout, torch_python, files, schema, rows, batch_size, warmup, steps) -> dict | str:
    """The official DDPO code's row (benchmarks/official_ddpo.py in `torch_python`), or why its column is skipped.

    The checkout's code needs PyTorch, pandas, scikit-learn and tqdm in
    `torch_python`; it reads the same rows as `files` from a CSV written next
    to them (a local folder). A failure of that code is reported as the
    reason the column is skipped, so the tfcvr rows of the run are kept.
    """
    skipped = "official DDPO column skipped: "
    if not checkout:
        return skipped + "--official_ddpo=<a checkout of https://github.com/TL-UESTC/DDPO> not given"
    if not os.path.isfile(os.path.join(checkout, "main.py")):
        return skipped + f"--official_ddpo={checkout} has no main.py (expected a checkout of TL-UESTC/DDPO)"
    needs = "torch, pandas, sklearn, tqdm"
    try:
        probe = subprocess.run([torch_python, "-c", f"import {needs}"], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        return skipped + f"--torch_python={torch_python} cannot run ({error})"
    if probe.returncode:
        return skipped + f"--torch_python={torch_python} cannot import {needs} ({_last_line(probe.stderr)})"
    folder = os.path.dirname(files)
    if "://" in folder:
        return skipped + f"its CSV must be written to a local folder; --data_dir={folder} is not one"
    written = TFRecordPipeline(files, schema, batch_size).record_count()
    if written != rows:
        return skipped + f"{files} holds {written} records, not --rows={rows}: its CSV would not be the same rows"
    csv = os.path.join(folder, f"official_ddpo-{rows}.csv")
    if not os.path.isfile(csv):
        write_official_csv(csv, rows)
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "official_ddpo.py")
    command = [torch_python, runner, f"--checkout={checkout}", f"--csv={csv}", f"--batch_size={batch_size}"]
    command += [f"--warmup={warmup}", f"--steps={steps}"]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        return skipped + f"the official code did not finish within an hour ({' '.join(command)})"
    if run.returncode or not run.stdout.strip():
        return skipped + f"the official code failed ({' '.join(command)}):\n{run.stderr[-3000:]}"
    return json.loads(run.stdout.strip().splitlines()[-1])


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no message"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="Comma-separated; default every distinct registered method.")
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--batch_size", type=int, default=2048)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--data_dir", default=None, help="Reuse (or write) the TFRecords here.")
    parser.add_argument("--optimizer", default="adam", choices=sorted(optimizers.OPTIMIZERS))
    parser.add_argument(
        "--backbone", default=None, choices=["shared_bottom", "mmoe", "ple"], help="Default: each method's own."
    )
    parser.add_argument("--interaction", default="none", choices=["none", "cross", "dot"])
    parser.add_argument(
        "--steps_per_execution",
        type=int,
        default=STEPS_PER_EXECUTION,
        help="Training steps per tf.function call (trainer.task's default).",
    )
    parser.add_argument(
        "--cache", action="store_true", help="Parse the records once into memory first (trainer.task --cache_input)."
    )
    parser.add_argument(
        "--official_ddpo",
        default=None,
        help="A checkout of https://github.com/TL-UESTC/DDPO: its training rate is timed beside tfcvr's.",
    )
    parser.add_argument(
        "--torch_python", default="python3", help="A Python with PyTorch to run the official code with."
    )
    parser.add_argument(
        "--intra_op_threads",
        type=int,
        default=threads.AUTO,
        help="Threads per TensorFlow op (trainer.task --intra_op_threads; default 0: its auto rule).",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    threads.configure(args.intra_op_threads)  # before TensorFlow runs an op
    names = args.models.split(",") if args.models else [n for n in models.names() if models.get(n).registered_name == n]
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="tfcvr-throughput-")
    files = os.path.join(data_dir, "train-*.tfrecord")
    if not tf.io.gfile.glob(files):
        tf.io.gfile.makedirs(data_dir)
        write_data(data_dir, args.rows)
    schema = aliccp_shaped_schema()
    results = [measure_input(files, schema, args.batch_size, args.warmup, args.steps, args.cache)]
    _emit(results[-1], args.json)
    official = measure_official_ddpo(
        args.official_ddpo, args.torch_python, files, schema, args.rows, args.batch_size, args.warmup, args.steps
    )
    if isinstance(official, str):
        print(official, file=sys.stderr, flush=True)
    else:
        _emit(official, args.json)
    for name in names:
        results.append(
            measure_model(
                name,
                files,
                schema,
                args.batch_size,
                args.warmup,
                args.steps,
                args.optimizer,
                args.backbone,
                args.steps_per_execution,
                args.cache,
                args.interaction,
            )
        )
        _emit(results[-1], args.json)
    if not args.json and len(results) > 1:
        fastest = max(results[1:], key=lambda r: r["examples_per_s"])
        print(
            f"input pipeline / fastest model ({fastest['model']}): "
            f"{results[0]['examples_per_s'] / fastest['examples_per_s']:.1f}x",
            flush=True,
        )
        slowest = min(results[1:], key=lambda r: r["examples_per_s"])
        print(
            f"slowest ({slowest['model']}) / fastest: {slowest['examples_per_s'] / fastest['examples_per_s']:.0%}",
            flush=True,
        )
        ddpo = [r for r in results if r["model"] == "ddpo"]
        if ddpo and not isinstance(official, str):
            ratio = ddpo[0]["examples_per_s"] / official["examples_per_s"]
            print(f"ddpo / official DDPO code: {ratio:.2f}x", flush=True)


def _emit(result, as_json):
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        extra = (
            f"  {result['parameters']:>10,} params, {result['backbone']}/{result['interaction']}, {result['optimizer']}"
            if "backbone" in result
            else ""
        )
        if "torch" in result:
            extra = f"  {result['parameters']:>10,} params, torch {result['torch']}, {result['threads']} threads"
        if "cache_fill_s" in result:
            extra = f"  (cache filled in {result['cache_fill_s']} s)"
        print(
            f"{result['model']:>18}: {result['examples_per_s']:>10,.0f} examples/s "
            f"(mean {result['mean_examples_per_s']:>9,.0f})  median "
            f"{result['median_step_ms']:7.2f} ms  (p10 {result['p10_step_ms']:.2f}, p90 "
            f"{result['p90_step_ms']:.2f}){extra}",
            flush=True,
        )


if __name__ == "__main__":
    main()
