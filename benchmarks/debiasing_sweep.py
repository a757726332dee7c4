r"""Does every method hold in every world, epoch and day? A sweep of simulated worlds with ground truth.

    python benchmarks/debiasing_sweep.py [--mode full|quick|large] [--worlds default,low_ctr,...]
        [--methods naive,esmm,...] [--selection_metric ctcvr_nll] [--runs_jsonl sweep.jsonl]
    python benchmarks/debiasing_sweep.py --report sweep.jsonl

Worlds (`WORLDS`) span production regimes of the built-in simulator: CTR
1-10%, true CVR on clicks 2-28%, selection on the features only up to
strong hidden intent, 100,000 to 2,000,000 impressions, users and items from
hundreds to hundreds of thousands. In each world and seed one log
(train/valid/test 70/10/20) is
shared by every method; `trainer.benchmark.Leaderboard` trains each at the
library's defaults for `epochs` epochs (paired: same data, order and
initialisation), and both the first epoch and the validation-selected epoch
(as the leaderboard selects it: its selection metric, among the epochs that
do not over-predict the clicked rows, `trainer.epoch_selection`) are scored
on the test split. In
the `day_worlds`, three days of the same world follow (`simulate --day`):
day 1 from scratch, days 2 and 3 warm-started from the previous day's
selected weights (weights only, as `--warm_start_from`), each scored on its
own day's test split. Every epoch of every run is also written (epoch kind
"every": its test metrics as served and its validation metrics as selection
saw them; with `--runs_jsonl`, to that file), so a selection rule can be
replayed without training (benchmarks/selection_replay.py).

Per world (and per day) it prints the metric table, the soundness table of
benchmarks/debiasing_quality.py for the first and the selected epoch,
the calibration tables (Σ pCTR / clicks and Σ pCTCVR / conversions over all
test impressions within ±5%, or 2/√positives where that is wider, in every
run; the same against the expected counts of the ground truth, within 2/√ of
the training positives) as served by default (`--refit_intercepts=ctr`), with
`ctcvr` and with `none`, all three from the same trained models, and the
recommendation (validation metrics only) against the ground truth. `full`
runs every method, three seeds and three epochs in the six worlds of
100k-200k rows (sized for about 90 minutes on 2 cores; `--row_fraction` and
`--seeds` change it); `--mode large` the 2M-row world with naive, nise and
ddpo, three seeds and three epochs (a run of its own, about 20 minutes);
`--mode quick` six methods (`REPRESENTATIVE_METHODS`, one per family) in the
six worlds, three seeds, two epochs and half the rows (about 11 minutes).
docs/benchmarks.md, section "Sweep of worlds, epochs and days", has the
record.
"""

import argparse
import atexit
import dataclasses
import functools
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debiasing_quality  # noqa: E402 (the sibling benchmark: its soundness table and recommendation check)

from tfcvr import metrics  # noqa: E402
from tfcvr.data import simulate  # noqa: E402
from tfcvr.models import intercepts  # noqa: E402
from trainer import config as config_lib  # noqa: E402
from trainer.benchmark import Leaderboard  # noqa: E402

# name -> (SimulationConfig fields, impressions in full mode); rates measured on 200k rows of seed 0.
WORLDS = {
    # CTR 7.9%, true CVR 24.7% clicked / 7.8% unclicked, hidden intent 1 (the simulator's defaults).
    "default": ({}, 100_000),
    # CTR 3.8%, CVR 9.7% / 3.3%, CTCVR 0.37%, weaker intent.
    "low_ctr": ({"ctr_bias": -3.2, "cvr_bias": -3.9, "selection_strength": 0.5}, 100_000),
    # CTR 9.9%, CVR 23.6% / 12.8%: selection on the features only; 300 users, 200 items.
    "features_only": (
        {"ctr_bias": -2.0, "cvr_bias": -2.2, "selection_strength": 0.0, "num_users": 300, "num_items": 200},
        100_000,
    ),
    # CTR 7.1%, CVR 28.2% / 3.7%: strong hidden intent (the unclicked space's CVR is 1/8 of the clicked one's).
    "strong_intent": ({"ctr_bias": -3.6, "cvr_bias": -4.6, "selection_strength": 2.0}, 100_000),
    # CTR 5.6%, CVR 2.0% / 0.4%, CTCVR 0.12%; 20k users, 5k items.
    "rare_conversion": (
        {"ctr_bias": -3.0, "cvr_bias": -6.3, "num_users": 20_000, "num_items": 5_000},
        200_000,
    ),
    # CTR 1.1%, CVR 22.3% / 5.7%; 50k users, 20k items.
    "very_low_ctr": (
        {"ctr_bias": -4.8, "cvr_bias": -3.6, "num_users": 50_000, "num_items": 20_000},
        200_000,
    ),
    # CTR 4.1%, CVR 12.1% / 3.0%, CTCVR 0.48%; 200k users, 100k items, 2M impressions: a production-sized log.
    "large": (
        {"ctr_bias": -3.4, "cvr_bias": -4.3, "num_users": 200_000, "num_items": 100_000},
        2_000_000,
    ),
}
# One method of each family (and naive): what the quick mode runs.
REPRESENTATIVE_METHODS = ("naive", "esmm", "escm2_ipw", "dr_jl", "nise", "ddpo")
SIZED_WORLDS = tuple(name for name in WORLDS if name != "large")


@dataclasses.dataclass(frozen=True)
class Mode:
    seeds: tuple
    epochs: int
    row_fraction: float
    methods: tuple
    day_worlds: tuple
    days: int = 3
    worlds: tuple = SIZED_WORLDS  # the default of --worlds


MODES = {
    "full": Mode(
        seeds=(0, 1, 2),
        epochs=3,
        row_fraction=1.0,
        methods=tuple(debiasing_quality._distinct_methods()),
        day_worlds=("low_ctr", "strong_intent"),
    ),
    # The 2M-row world on its own: naive, the best and the least stable method of the earlier sweeps. A method
    # there takes about 2.5 minutes per seed (naive and ddpo: 308 s for one seed, 30 s of it simulating the log),
    # so every method would take about three times the full mode's budget.
    "large": Mode(
        seeds=(0, 1, 2),
        epochs=3,
        row_fraction=1.0,
        methods=("naive", "nise", "ddpo"),
        day_worlds=(),
        worlds=("large",),
    ),
    "quick": Mode(
        seeds=(0, 1, 2),  # one seed took 218 s: three make the soundness and recommendation verdicts mean something
        epochs=2,
        row_fraction=0.5,
        methods=REPRESENTATIVE_METHODS,
        day_worlds=("low_ctr",),
    ),
}
DEFAULT_REFIT = config_lib.OptimizationConfig().refit_intercepts
# The epoch kind of the lines that record each epoch (its test metrics as served, its validation metrics as selection
# saw them); "first" and "selected" are the tables' kinds.
EVERY_EPOCH = "every"
TABLE_KINDS = ("first", "selected")
SELECTION_METRIC = config_lib.LeaderboardConfig().selection_metric  # the leaderboard's default
# Σ prediction / Σ label over all test impressions: within this, or two standard errors of the label count.
CALIBRATION_TOLERANCE = 0.05


def calibration_bound(positives: float) -> float:
    """The allowed |Σ prediction / Σ label − 1|: 5%, or 2/√positives where the label count's noise is wider."""
    return max(CALIBRATION_TOLERANCE, 2.0 / math.sqrt(positives)) if positives > 0 else math.inf


def calibration_table(results: dict, served: str, training: dict) -> str:
    """Per method: the range over runs of each total's ratio, ✓ when every run is within its bound.

    Two verdicts. Against the test labels (the issue's): Σ pCTR / clicks and
    Σ pCTCVR / conversions within ±5% or 2/√(test positives). Against the
    expected counts (ground truth, no test-label noise): Σ pCTR / Σ true_ctr and
    Σ pCTCVR / Σ true_ctr·true_cvr within ±5% or 2/√(training positives), the
    noise of the level any model fitted to the training labels inherits.
    `training`: per method, per run, the training split's {"clicks",
    "conversions"} (None where unknown: the expected-count verdict is then
    "?"). The last column is the truth's own Σ true_ctr·true_cvr / conversions,
    ✗ where the true probabilities themselves miss the test-label bound.
    """
    lines = [
        f"Calibration over all test impressions, {served}. Test labels: every run within ±5% or "
        "2/√(test positives); expected counts: within ±5% or 2/√(training positives). ✓ meets, ✗ fails",
        "",
        "| method | Σ pCTR / clicks | Σ pCTCVR / conversions | calibrated (labels) | Σ pCTR / expected | "
        "Σ pCTCVR / expected | calibrated (expected) | truth / conversions |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, runs in results.items():
        cells, ok = [], True
        for metric, count in (("ctr_pcoc", "clicks"), ("ctcvr_pcoc", "conversions")):
            values = [r.get(metric, math.nan) for r in runs]
            within = all(abs(v - 1) <= calibration_bound(r.get(count, 0)) for v, r in zip(values, runs))
            ok &= within
            cells.append(f"{_range(values)} {'✓' if within else '✗'}")
        cells.append("yes" if ok else "NO")
        verdict: bool | None = True
        for metric, count in (("oracle_ctr_pcoc", "clicks"), ("oracle_ctcvr_pcoc", "conversions")):
            values = [r.get(metric, math.nan) for r in runs]
            counts = [(t or {}).get(count) for t in training[method]]
            if any(c is None for c in counts):
                verdict, mark = None, "?"
            else:
                within = all(abs(v - 1) <= calibration_bound(c) for v, c in zip(values, counts))
                verdict, mark = verdict and within, "✓" if within else "✗"
            cells.append(f"{_range(values)} {mark}")
        cells.append("?" if verdict is None else "yes" if verdict else "NO")
        truth = [r.get("ctcvr_pcoc", math.nan) / r.get("oracle_ctcvr_pcoc", math.nan) for r in runs]
        truth_within = all(abs(v - 1) <= calibration_bound(r.get("conversions", 0)) for v, r in zip(truth, runs))
        cells.append(f"{_range(truth)} {'✓' if truth_within else '✗'}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _range(values) -> str:
    return f"{np.nanmin(values):.3f}–{np.nanmax(values):.3f}"


def _config(methods, seed: int, folder: str, epochs: int, selection_metric: str) -> config_lib.BenchmarkConfig:
    return config_lib.BenchmarkConfig(
        optimization=config_lib.OptimizationConfig(epochs=epochs, seed=seed),
        leaderboard=config_lib.LeaderboardConfig(models=list(methods), runs=1, selection_metric=selection_metric),
        report=config_lib.ReportConfig(output_dir=folder),
    )


def run_world(world: str, mode: Mode, methods, root: str, write, selection_metric: str = SELECTION_METRIC) -> None:
    """Every seed (and day) of `world`: trains, scores and writes one JSON line per method, seed, day and epoch kind.

    `methods`: None for the mode's; `selection_metric`: the validation metric that selects the epoch.
    """
    methods = methods or mode.methods
    settings, rows = WORLDS[world]

    def write_every_epoch(run, epochs, every_epoch, reference, counts):
        # Each epoch as served and as validation scored it before any refit: selection rules replay offline.
        for number, ((test_at, _), valid_at) in enumerate(every_epoch, start=1):
            scored = _metrics(test_at, reference["test"]), _metrics(valid_at, reference["validation"])
            write(_record(*run, EVERY_EPOCH, epochs, rows, settings, number, *scored, None, counts))

    rows = int(rows * mode.row_fraction)
    days = range(1, mode.days + 1) if world in mode.day_worlds else (None,)
    for seed in mode.seeds:
        previous = {}
        for day in days:
            folder = os.path.join(root, f"{world}-seed{seed}-day{day}")
            data = simulate.write_simulation(
                folder,
                rows,
                seed=seed,
                eval_fraction=0.2,
                valid_fraction=0.1,
                config=simulate.SimulationConfig(**settings),
                day=day,
            )
            # A warm-started day trains one epoch, as a daily retrain does; day 1 and single-day worlds all epochs.
            epochs = 1 if previous else mode.epochs
            board = Leaderboard(data, _config(methods, seed, folder, epochs, selection_metric), log=lambda line: None)
            # naive comes first: its pCTR weighs every method's D-AUC/D-NLL, as on the leaderboard.
            reference = {}
            for method in board.model_names:
                run, every_epoch = (world, seed, day, method), []

                def score_epoch(epoch, model, validation, every_epoch=every_epoch, board=board):
                    # Metrics once naive's reference is known; training never sees the refit's offsets.
                    every_epoch.append((served_variants(board, model, refit=True), validation))

                try:
                    model, selection, validation = board.train_and_select(
                        method, 0, initial_weights=previous.get(method), on_epoch=score_epoch
                    )
                except FloatingPointError as e:
                    if method == debiasing_quality.REFERENCE:
                        raise
                    # Counted, not hidden: NaN metrics fail the soundness table; its next day starts afresh.
                    previous.pop(method, None)
                    write_every_epoch(run, epochs, every_epoch, reference, None)
                    diverged = {name: math.nan for name in metrics.METRIC_DESCRIPTIONS}
                    for kind in TABLE_KINDS:
                        valid = diverged if kind == "selected" else None  # the recommendation's guard sets it aside
                        record = _record(
                            *run,
                            kind,
                            epochs,
                            rows,
                            settings,
                            None,
                            diverged,
                            valid,
                            {"raw": diverged, "ctcvr": diverged},
                            None,
                        )
                        write({**record, "diverged": str(e)})
                    continue
                test, variants = served_variants(board, model, refit=False)
                if method == debiasing_quality.REFERENCE:
                    reference.update(test=test[0]["ctr"], validation=validation[0]["ctr"])
                previous[method] = {path: v.numpy() for path, v in model.weights_by_path().items()}
                epoch = selection["selected_epoch"]
                (first_test, first_variants), _ = every_epoch[0]
                first = _metrics(first_test, reference["test"])
                first_variants = {k: _metrics(v, reference["test"]) for k, v in first_variants.items()}
                refit = selection["intercepts"]  # the training split's label counts, unless the refit was skipped
                counts = None if "skipped" in refit else {k: refit[k] for k in ("examples", "clicks", "conversions")}
                write(_record(*run, "first", epochs, rows, settings, 1, first, None, first_variants, counts))
                write_every_epoch(run, epochs, every_epoch, reference, counts)
                selected = _metrics(test, reference["test"])
                validation_metrics = _metrics(validation, reference["validation"])
                selected_variants = {k: _metrics(v, reference["test"]) for k, v in variants.items()}
                write(
                    _record(
                        *run,
                        "selected",
                        epochs,
                        rows,
                        settings,
                        epoch,
                        selected,
                        validation_metrics,
                        selected_variants,
                        counts,
                    )
                )


def served_variants(board, model, refit: bool) -> tuple:
    """(test scores as the library serves by default, {variant: test scores}) of `model`, its offsets left as found.

    Variants: "raw" (the heads as trained, `--refit_intercepts=none`) and "ctcvr" (`--refit_intercepts=ctcvr`).
    `refit`: refit the default's offsets first (the first epoch; after selection the leaderboard has). One pass over
    the test split and one over the training split with the offsets at 0; each variant is those test predictions
    shifted as the model would serve them (`intercepts.shifted`). A refit the data leave undetermined keeps the
    offsets the model has, as `refit_or_skip` does.
    """
    current = intercepts.served_offsets(model)
    with intercepts.offsets_restored(model, zero=True):
        raw, labels = board.score_test(model)
        training = board.training_predictions(model)

    def refitted(target: str) -> tuple:
        try:
            return intercepts.solve_offsets(*training, target)[:2]
        except intercepts.RefitError:
            return current

    served = refitted(DEFAULT_REFIT) if refit else current
    variants = {"raw": (raw, labels), "ctcvr": (intercepts.shifted(raw, *refitted("ctcvr")), labels)}
    return (intercepts.shifted(raw, *served), labels), variants


def _record(world, seed, day, method, kind, epochs, rows, settings, epoch, test, validation, variants, counts) -> dict:
    """One JSON line: a method's test metrics at its first, validation-selected or every (`EVERY_EPOCH`) epoch.

    `validation`: the selected epoch's validation metrics (after the refit), or each epoch's before it (every epoch).

    `test` as served by default (`DEFAULT_REFIT`), `variants` {"raw", "ctcvr"} the other refits' test metrics;
    `counts`: the training split's {"examples", "clicks", "conversions"}.
    """
    return {
        "world": world,
        "seed": seed,
        "day": day,
        "warm_started": day is not None and day > 1,
        "method": method,
        "epoch_kind": kind,
        "epochs": epochs,
        "rows": rows,
        "epoch": epoch,
        "settings": settings,
        "test": test,
        **{f"test_{name}": scored for name, scored in (variants or {}).items()},
        "validation": validation,
        "training_labels": counts,
    }


def _metrics(scored: tuple, reference_ctr) -> dict:
    """Metrics of (predictions, labels), D-AUC/D-NLL weighted by naive's pCTR (`reference_ctr`)."""
    predictions, labels = scored
    return metrics.compute_metrics(predictions, labels, reference_ctr=reference_ctr)


def _runs(latest: dict, group: tuple, seeds: list, methods: list, key: str) -> dict:
    """{method: [each seed's run's `key`]} of one (world, day, rows, epoch kind); None where a run has no `key`."""
    return {m: [latest[(*group, s, m)].get(key) for s in seeds] for m in methods}


def report(lines: list) -> None:
    """The tables of every world (and day), from the JSON lines (a later line for the same run wins)."""
    latest = {}
    for run in lines:
        if run["epoch_kind"] not in TABLE_KINDS:  # the per-epoch lines: for replaying selection offline
            continue
        latest[(run["world"], run["day"], run["rows"], run["epoch_kind"], run["seed"], run["method"])] = run
    # One group per world, day and size (a quick and a full run appended to one file stay apart).
    groups = sorted({key[:3] for key in latest}, key=lambda k: (k[0], k[1] or 0, k[2]))
    for world, day, rows in groups:
        keys = [k for k in latest if k[:3] == (world, day, rows)]
        methods = [debiasing_quality.REFERENCE] + sorted({k[5] for k in keys} - {debiasing_quality.REFERENCE})
        seeds = sorted({k[4] for k in keys})
        sample = latest[keys[0]]
        title = f"## {world}" + (f", day {day}" + (" (warm-started)" if sample["warm_started"] else "") if day else "")
        print(
            f"\n{title}: {len(seeds)} seed(s), {sample['rows']} rows, {sample['epochs']} epoch(s), {sample['settings']}"
        )
        for kind in TABLE_KINDS:
            complete = [s for s in seeds if all((world, day, rows, kind, s, m) in latest for m in methods)]
            if not complete:
                continue
            column = functools.partial(_runs, latest, (world, day, rows, kind), complete, methods)
            results, validation = column("test"), column("validation")
            print(f"\n### {'first epoch' if kind == 'first' else 'validation-selected epoch'}\n")
            print("| method | " + " | ".join(t for _, t in debiasing_quality.COLUMNS) + " |")
            print("|---|" + "---|" * len(debiasing_quality.COLUMNS))
            for m in methods:
                cells = [
                    "{:.4f} ± {:.4f}".format(*debiasing_quality._mean_sd([r.get(k, math.nan) for r in results[m]]))
                    for k, _ in debiasing_quality.COLUMNS
                ]
                print(f"| {m} | " + " | ".join(cells) + " |")
            print()
            print(debiasing_quality.soundness_table(results))
            print()
            training = column("training_labels")
            print(calibration_table(results, f"as served (--refit_intercepts={DEFAULT_REFIT})", training))
            for variant, flag in (("ctcvr", "ctcvr"), ("raw", "none")):
                scored = {m: [run or {} for run in runs] for m, runs in column(f"test_{variant}").items()}
                print()
                print(calibration_table(scored, f"--refit_intercepts={flag}", training))
            if kind == "selected":
                print()
                print(debiasing_quality.recommendation_check(results, validation), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="full", choices=sorted(MODES))
    parser.add_argument(
        "--worlds", default=None, help=f"Comma-separated, of {list(WORLDS)}; default: the mode's (large: 'large')."
    )
    parser.add_argument("--methods", default=None, help="Comma-separated; default: the mode's list.")
    parser.add_argument("--seeds", default=None, help="Comma-separated; default: the mode's.")
    parser.add_argument(
        "--row_fraction", type=float, default=None, help="Of each world's impressions (WORLDS); default: the mode's."
    )
    parser.add_argument(
        "--selection_metric",
        default=SELECTION_METRIC,
        help="Validation metric that selects each run's epoch (trainer.benchmark --selection_metric; its default).",
    )
    parser.add_argument("--runs_jsonl", default=None, help="Append every run's metrics here (one JSON per line).")
    parser.add_argument("--report", default=None, help="Only print the tables of a --runs_jsonl file.")
    args = parser.parse_args()
    if args.report:
        with open(args.report) as f:
            report([json.loads(line) for line in f])
        return
    mode = MODES[args.mode]
    if args.seeds:
        mode = dataclasses.replace(mode, seeds=tuple(int(s) for s in args.seeds.split(",")))
    if args.row_fraction:
        mode = dataclasses.replace(mode, row_fraction=args.row_fraction)
    worlds = args.worlds.split(",") if args.worlds else list(mode.worlds)
    unknown = sorted(set(worlds) - set(WORLDS))
    if unknown:
        parser.error(f"--worlds: unknown {unknown}; expected some of {list(WORLDS)}")
    methods = args.methods.split(",") if args.methods else None
    root = tempfile.mkdtemp(prefix="tfcvr-sweep-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)  # the simulated logs; --runs_jsonl keeps the results
    lines = []

    def write(run):
        lines.append(run)
        test = run["test"]
        print(
            f"{run['world']} seed {run['seed']} day {run['day']} {run['method']} {run['epoch_kind']} "
            f"(epoch {run['epoch']}): "
            + ", ".join(f"{k}={test.get(k, math.nan):.4f}" for k, _ in debiasing_quality.COLUMNS),
            flush=True,
        )
        if args.runs_jsonl:
            with open(args.runs_jsonl, "a") as f:
                f.write(json.dumps(run) + "\n")

    for world in worlds:
        run_world(world, mode, methods, root, write, args.selection_metric)
    report(lines)


if __name__ == "__main__":
    main()
