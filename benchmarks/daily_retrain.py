r"""The daily retrain: warm-started day 2 against day 2 from scratch, and how fast a new version is served.

    python benchmarks/daily_retrain.py [--seeds 0,1,2,3,4] [--regimes 1.0,0.0] [--rows 100000]
        [--model esmm] [--budgets 20,0] [--rollouts 5] [--json]

Quality: for every seed (one simulated world) and regime (the simulator's
selection_strength: 1.0 with the hidden confounder, 0.0 without), day 1
trains one epoch from scratch on `--rows` impressions; day 2 (fresh
impressions of the same users and items, `simulate --day`) trains the same
number of steps twice, warm-started from day 1 (`--warm_start_from`) and
from scratch, and both are evaluated on day 2's held-out impressions. A
budget of N steps (`--steps_per_epoch=N`, one epoch) or 0 (one full pass)
is the steps each day-2 run gets. Reported: ctcvr_nll, cvr_nll (clicked),
oracle_cvr_nll (all impressions, ground truth) per run, and the paired
difference warm - scratch with its spread over seeds.

Rollout: a version exported into a base that `serving.local` polls (TF
Serving's default file system poll, 1 s) and the time from the export's
return until a request is answered by the new version (poll wait + load).

Every run is `python -m trainer.task` in a subprocess, as a scheduler runs it.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from tfcvr.data import simulate

METRICS = ("ctcvr_nll", "cvr_nll", "oracle_cvr_nll")


def _train(model, data, model_dir, *extra):
    command = [
        sys.executable,
        "-m",
        "trainer.task",
        f"--model={model}",
        f"--train_files={data['train']}",
        f"--eval_files={data['eval']}",
        f"--schema={data['schema']}",
        f"--model_dir={model_dir}",
        "--noexport",
        *extra,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    with open(os.path.join(model_dir, "metrics.json")) as f:
        report = json.load(f)
    return {**{k: report["metrics"][k] for k in METRICS}, "steps": report["training"]["steps"]}


def quality(args, out):
    rows = []
    for regime in [float(r) for r in args.regimes.split(",")]:
        config = simulate.SimulationConfig(selection_strength=regime)
        for seed in [int(s) for s in args.seeds.split(",")]:
            world = f"{out}/s{seed}-r{regime}"
            days = {
                day: simulate.write_simulation(f"{world}/day{day}", args.rows, seed, config=config, day=day)
                for day in (1, 2)
            }
            day1 = f"{world}/run1"
            _train(args.model, days[1], day1, f"--seed={seed}")
            for budget in [int(b) for b in args.budgets.split(",")]:
                steps = [f"--steps_per_epoch={budget}"] if budget else []
                warm = _train(
                    args.model, days[2], f"{day1}-warm{budget}", f"--seed={seed}", f"--warm_start_from={day1}", *steps
                )
                scratch = _train(args.model, days[2], f"{day1}-scratch{budget}", f"--seed={seed}", *steps)
                row = {"regime": regime, "seed": seed, "budget": budget, "warm": warm, "scratch": scratch}
                rows.append(row)
                print(json.dumps(row) if args.json else _row_line(row), flush=True)
    return rows


def _row_line(row):
    cells = "  ".join(
        f"{k} {row['warm'][k]:.4f}/{row['scratch'][k]:.4f} ({row['warm'][k] - row['scratch'][k]:+.4f})" for k in METRICS
    )
    return f"regime {row['regime']} seed {row['seed']} steps {row['warm']['steps']}: warm/scratch {cells}"


def summary(rows):
    lines = ["regime  steps  metric           warm      scratch   warm-scratch (mean ± sd over seeds)  warm better"]
    for regime in sorted({r["regime"] for r in rows}, reverse=True):
        for budget in sorted({r["budget"] for r in rows}):
            group = [r for r in rows if r["regime"] == regime and r["budget"] == budget]
            for metric in METRICS:
                warm = np.array([r["warm"][metric] for r in group])
                scratch = np.array([r["scratch"][metric] for r in group])
                diff = warm - scratch
                lines.append(
                    f"{regime:<7} {group[0]['warm']['steps']:<6} {metric:<15} {warm.mean():.4f}    {scratch.mean():.4f}"
                    f"    {diff.mean():+.4f} ± {diff.std(ddof=1) if len(diff) > 1 else 0:.4f}"
                    f"                   {int((diff < 0).sum())}/{len(diff)}"
                )
    return "\n".join(lines)


def rollout(args, out):
    """Seconds from a finished export to the stand-in server answering with the new version."""
    import keras
    import tensorflow as tf

    from serving.local import ExportedModels
    from tfcvr import export, models
    from tfcvr.data import load_schema

    schema = load_schema(simulate.write_simulation(f"{out}/rollout-data", 1000, num_shards=1)["schema"])
    base = f"{out}/rollout-export"
    keras.utils.set_random_seed(0)
    model = models.build(args.model, schema)
    export.export_for_serving(model, schema, base)
    request = {
        f.name: np.array(["0"] if f.tf_dtype == tf.string else [0], dtype=object if f.tf_dtype == tf.string else None)
        for f in schema.features
    }
    served = ExportedModels({"cvr": base}, file_system_poll_wait_seconds=args.poll_seconds)
    times = []
    try:
        for _ in range(args.rollouts):
            path = export.export_for_serving(model, schema, base, keep_versions=2)
            exported_at, version = time.perf_counter(), int(os.path.basename(path))
            while served.predict("cvr", request, signature_name="predict", convert_dtypes=True)[0] != version:
                time.sleep(0.01)
            times.append(time.perf_counter() - exported_at)
    finally:
        served.close()
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--regimes", default="1.0,0.0")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--model", default="esmm")
    parser.add_argument("--budgets", default="20,0", help="Day-2 steps per run; 0 = one full pass.")
    parser.add_argument("--rollouts", type=int, default=5)
    parser.add_argument("--poll_seconds", type=float, default=1.0, help="serving.local's file system poll.")
    parser.add_argument("--skip_quality", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="tfcvr-daily-")
    if not args.skip_quality:
        rows = quality(args, out)
        print(summary(rows))
    times = rollout(args, out)
    print(
        f"export -> served by the new version (poll {args.poll_seconds:g} s), {len(times)} rollouts: "
        f"median {np.median(times):.2f} s, max {max(times):.2f} s"
    )


if __name__ == "__main__":
    main()
