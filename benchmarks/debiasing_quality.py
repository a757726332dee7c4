r"""Which method corrects selection bias best on the built-in simulator: mean ± sd over seeds.

    python benchmarks/debiasing_quality.py [--seeds 0,1,2] [--rows 200000] [--methods naive,esmm,...]

A method entry may carry constructor arguments for a variant, e.g.
`--methods "ukd,ukd[detach_uncertainty_weight=True]"` (arguments separated by
";"); they reach the command line as --model_params.

For each seed, one simulated log (tfcvr.data.simulate) is shared by every
method, and each method trains through the real command line
(`python -m trainer.task ... --seed=S`), so the comparison is paired: the same
data, data order and initialisation seed for every method. Prints one row per
method: CVR AUC on clicks, CTCVR AUC, oracle CVR AUC and log loss over all
impressions, mean pCVR bias on unclicked impressions, and the propensity's CTR
AUC and calibration (the CTR head's for methods without a propensity).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from tfcvr import models
from tfcvr.data import simulate

COLUMNS = (
    ("cvr_auc", "CVR AUC (clicked)"),
    ("ctcvr_auc", "CTCVR AUC"),
    ("oracle_cvr_auc", "oracle CVR AUC"),
    ("oracle_cvr_nll", "oracle CVR NLL"),
    ("cvr_pcoc", "PCOC (clicked)"),
    ("cvr_bias_unclicked", "bias unclicked"),
    ("propensity_auc", "propensity AUC"),
    ("propensity_calibration", "propensity calib."),
)


def _distinct_methods():
    # Aliases (joint = naive) run once, under the name the class registered.
    return [name for name in models.names() if models.get(name).registered_name == name]


def _method_and_params(entry):
    """"ukd[a=1;b=2]" -> ("ukd", ["a=1", "b=2"]); "ukd" -> ("ukd", [])."""
    name, bracket, rest = entry.partition("[")
    if not bracket:
        return entry, []
    if not rest.endswith("]"):
        raise SystemExit(f"--methods entry {entry!r}: expected NAME or NAME[param=value;...]")
    return name, [item for item in rest[:-1].split(";") if item]


def _run(method, seed, data, args, root):
    name, params = _method_and_params(method)
    model_dir = tempfile.mkdtemp(prefix=f"{name}-{seed}-", dir=root)
    command = [
        sys.executable, "-m", "trainer.task", f"--model={name}", f"--seed={seed}",
        f"--train_files={data['train']}", f"--eval_files={data['eval']}", f"--schema={data['schema']}",
        f"--model_dir={model_dir}", f"--epochs={args.epochs}", f"--batch_size={args.batch_size}", "--noexport",
    ] + ([f"--backbone={args.backbone}"] if args.backbone else []) + (
        [f"--model_params={','.join(params)}"] if params else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{method} seed {seed} failed:\n{result.stderr[-3000:]}")
    with open(os.path.join(model_dir, "metrics.json")) as f:
        metrics = json.load(f)["metrics"]
    metrics.setdefault("propensity_auc", metrics["ctr_auc"])
    metrics.setdefault("propensity_calibration", float("nan"))
    return metrics


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--backbone", default=None, help="Default: each method's own backbone.")
    parser.add_argument("--methods", default=",".join(_distinct_methods()))
    parser.add_argument("--reference", default="naive",
                        help="Method the paired differences (same seed) are taken against.")
    parser.add_argument("--selection_strength", type=float, default=simulate.SimulationConfig.selection_strength,
                        help="Weight of the simulator's hidden intent; 0 = selection on features only (MAR).")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    root = tempfile.mkdtemp(prefix="tfcvr-quality-")
    results = {method: [] for method in methods}
    for seed in seeds:
        config = simulate.SimulationConfig(selection_strength=args.selection_strength)
        data = simulate.write_simulation(os.path.join(root, f"data-{seed}"), args.rows, seed=seed, config=config)
        for method in methods:
            results[method].append(_run(method, seed, data, args, root))
            print(f"seed {seed} {method}: " + ", ".join(
                f"{key}={results[method][-1][key]:.4f}" for key, _ in COLUMNS), flush=True)
    print(f"\n{len(seeds)} seeds ({args.seeds}), {args.rows} simulated rows, {args.epochs} epoch(s), "
          f"batch {args.batch_size}, backbone {args.backbone or 'per method'}, selection_strength {args.selection_strength}: mean ± sd")
    width = max(17, max(len(method) for method in methods) + 2)
    header = f"{'method':<{width}}" + "".join(f"{title:>22}" for _, title in COLUMNS)
    print(header)
    print("-" * len(header))
    for method in methods:
        cells = []
        for key, _ in COLUMNS:
            values = np.array([run[key] for run in results[method]], dtype=float)
            cells.append(f"{np.mean(values):>13.4f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.4f}")
        print(f"{method:<{width}}" + "".join(f"{cell:>22}" for cell in cells))
    if args.reference in results:
        print(f"\nPaired differences against {args.reference} (same seed, same data): mean ± sd")
        print(f"{'method':<{width}}{'Δ bias unclicked':>22}{'Δ oracle CVR AUC':>22}{'Δ CVR AUC (clicked)':>22}")
        for method in methods:
            cells = []
            for key in ("cvr_bias_unclicked", "oracle_cvr_auc", "cvr_auc"):
                deltas = np.array([run[key] - reference[key]
                                   for run, reference in zip(results[method], results[args.reference])])
                cells.append(f"{deltas.mean():>+13.4f} ± {deltas.std(ddof=1) if len(deltas) > 1 else 0.0:.4f}")
            print(f"{method:<{width}}" + "".join(f"{cell:>22}" for cell in cells))


if __name__ == "__main__":
    main()
