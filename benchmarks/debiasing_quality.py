r"""Is every method sound at its defaults, and does the leaderboard's rule pick well? Over seeds and regimes.

    python benchmarks/debiasing_quality.py [--seeds 0,1,2,3,4] [--selection_strengths 1,0] [--rows 200000]
        [--world '{"ctr_bias": -3.2, "cvr_bias": -3.9}'] [--epochs 1] [--learning_rate_schedule constant]
        [--methods naive,esmm,"ukd[detach_uncertainty_weight=False]",...] [--runs_jsonl runs.jsonl]
        [--architectures default,mmoe/none,ple/none,shared_bottom/cross,shared_bottom/dot,...]
    python benchmarks/debiasing_quality.py --report runs.jsonl

For each regime (the simulator's `selection_strength`: 1 = clicks and
conversions share a hidden intent no feature carries; 0 = selection on the
features only) and each seed, one simulated log (train/valid/test 70/10/20)
is shared by every method, and `trainer.benchmark.Leaderboard` trains each
method once with that seed (the same data, data order and initialisation for
every method: paired), at the library's defaults, then scores the test split
(with ground truth) and the validation split (what a user could observe).

Per regime it prints:
- mean ± sd over seeds of CVR AUC on clicks, CTCVR AUC, oracle CVR AUC and
  log loss over all impressions, clicked-row calibration (Σ pCVR / Σ
  conversions) and the mean bias on unclicked impressions;
- the soundness table (`soundness_table`): every method must not lose more
  oracle CVR log loss than 2 sd of its paired difference with naive, lose at
  most 0.02 CVR AUC on clicks, keep its clicked-row calibration within
  [0.5, 2] and its seed-to-seed sd within 2x naive's, and never diverge;
- the leaderboard's recommendation (`trainer.recommendation`, validation
  metrics only) against the ground truth: the recommended method's oracle
  CVR log loss next to the best method's, within one sd or not, over all
  seeds and seed by seed.

With `--architectures` (BACKBONE/INTERACTION; "default" is each method's own
backbone without interaction) every method is trained on each architecture,
on the same data and seeds, and an architecture table per regime compares
them method by method: oracle CVR log loss, CVR AUC on clicks and CTCVR AUC,
mean ± sd, and the paired difference of oracle CVR log loss with the first
architecture listed.
"""

import argparse
import atexit
import json
import math
import os
import shutil
import tempfile

import numpy as np

from tfcvr import models
from tfcvr.data import simulate
from trainer import config as config_lib
from trainer import recommendation
from trainer.benchmark import Leaderboard

COLUMNS = (
    ("cvr_auc", "CVR AUC (clicked)"),
    ("ctcvr_auc", "CTCVR AUC"),
    ("oracle_cvr_auc", "oracle CVR AUC"),
    ("oracle_cvr_nll", "oracle CVR NLL"),
    ("cvr_pcoc", "PCOC (clicked)"),
    ("cvr_bias_unclicked", "bias unclicked"),
    ("ctr_pcoc", "Σ pCTR / clicks"),
    ("ctcvr_pcoc", "Σ pCTCVR / conversions"),
    ("oracle_ctr_pcoc", "Σ pCTR / Σ true_ctr"),
    ("oracle_ctcvr_pcoc", "Σ pCTCVR / Σ true_ctr·true_cvr"),
)
REFERENCE = "naive"


def _distinct_methods():
    # Aliases (joint = naive) run once, under the name the class registered.
    return [name for name in models.names() if models.get(name).registered_name == name]


def _mean_sd(values) -> tuple:
    values = np.asarray(values, np.float64)
    return float(np.mean(values)), float(np.std(values, ddof=1)) if values.size > 1 else 0.0


def soundness_table(results: dict, reference: str = REFERENCE) -> str:
    """Each method against the soundness criteria, paired with `reference` seed by seed.

    `results`: {method: [test metrics of each seed]}. Columns: paired Δ oracle
    CVR log loss (mean ± sd; ✓ when the mean is at most 2 sd above 0); Δ CVR
    AUC on clicks (✓ at most 0.02 below); sd of clicked-row PCOC over seeds
    (✓ at most 2x the reference's, shown in brackets); range of clicked-row
    PCOC (✓ every seed within the collapse band of `trainer.recommendation`,
    [0.5, 2]); runs with a non-finite metric
    (diverged).
    """
    ref = results[reference]
    ref_pcoc_sd = _mean_sd([r["cvr_pcoc"] for r in ref])[1]
    low, high = recommendation.CALIBRATION_BAND
    lines = [
        f"Soundness against {reference} (paired by seed): ✓ meets, ✗ fails",
        "",
        "| method | Δ oracle NLL | Δ CVR AUC (clicked) | PCOC sd (2x naive) | PCOC range | diverged | sound |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, runs in results.items():
        nll = np.array([r["oracle_cvr_nll"] - b["oracle_cvr_nll"] for r, b in zip(runs, ref)])
        auc = np.array([r["cvr_auc"] - b["cvr_auc"] for r, b in zip(runs, ref)])
        pcoc = np.array([r["cvr_pcoc"] for r in runs])
        diverged = sum(not np.all(np.isfinite([r[k] for k in ("oracle_cvr_nll", "cvr_auc", "cvr_pcoc")])) for r in runs)
        (nll_mean, nll_sd), (auc_mean, auc_sd), (_, pcoc_sd) = _mean_sd(nll), _mean_sd(auc), _mean_sd(pcoc)
        checks = [
            nll_mean <= 2 * nll_sd,
            auc_mean >= -0.02,
            pcoc_sd <= 2 * ref_pcoc_sd,
            bool(np.all((pcoc >= low) & (pcoc <= high))),
            diverged == 0,
        ]
        mark = ["✓" if ok else "✗" for ok in checks]
        lines.append(
            f"| {method} | {nll_mean:+.4f} ± {nll_sd:.4f} {mark[0]} | {auc_mean:+.4f} ± {auc_sd:.4f} "
            f"{mark[1]} | {pcoc_sd:.3f} ({2 * ref_pcoc_sd:.3f}) {mark[2]} | {np.nanmin(pcoc):.2f}–"
            f"{np.nanmax(pcoc):.2f} {mark[3]} | {diverged} {mark[4]} | {'yes' if all(checks) else 'NO'} |"
        )
    return "\n".join(lines)


def recommendation_check(results: dict, validation: dict) -> str:
    """The rule's pick (validation only) against the ground truth, over all seeds and seed by seed.

    The verdict (issue: "the recommendation validated across the sweep"): the
    pick's oracle CVR log loss is at most one sd (naive's, over seeds) above
    naive's, and within one sd (the best's) of the best method's, unless the
    gap is invisible: no observable validation metric (`VISIBLE_METRICS`)
    has a lower mean for the best method than for the pick, so no rule
    without ground truth could have preferred it.
    """
    oracle = {m: _mean_sd([r["oracle_cvr_nll"] for r in runs]) for m, runs in results.items()}
    finite = [m for m in oracle if math.isfinite(oracle[m][0])]
    best = min(finite, key=lambda m: oracle[m][0])
    advice = recommendation.recommend(validation, REFERENCE)
    lines = [recommendation.recommendation_markdown(advice)]
    picked = advice["recommended"]
    if picked is not None:
        gap = oracle[picked][0] - oracle[best][0]
        above_naive = oracle[picked][0] - oracle[REFERENCE][0]
        lines.append(
            f"Against the ground truth: recommended {picked} has oracle CVR log loss "
            f"{oracle[picked][0]:.4f} ± {oracle[picked][1]:.4f}; the best method, {best}, "
            f"{oracle[best][0]:.4f} ± {oracle[best][1]:.4f}: gap {gap:+.4f}, "
            f"{'within' if gap <= oracle[best][1] else 'NOT within'} one sd of the best."
        )
        preferring = _metrics_preferring(validation, best, picked)
        visible = (
            f"visible to validation {', '.join(preferring)}"
            if preferring
            else "invisible: no validation metric prefers it"
        )
        verdict = above_naive <= oracle[REFERENCE][1] and (gap <= oracle[best][1] or not preferring)
        lines.append(
            f"Verdict: {'PASS' if verdict else 'FAIL'} (pick vs naive {above_naive:+.4f}, naive's sd "
            f"{oracle[REFERENCE][1]:.4f}; the gap to {best} is {visible})."
        )
    seeds = len(results[REFERENCE])
    for index in range(seeds):
        one = recommendation.recommend({m: [runs[index]] for m, runs in validation.items()}, REFERENCE)
        losses = {m: runs[index]["oracle_cvr_nll"] for m, runs in results.items()}
        seed_best = min(losses, key=losses.get)
        pick = one["recommended"]
        lines.append(
            f"- seed #{index + 1}: picks {pick} (oracle {losses.get(pick, math.nan):.4f}); best "
            f"{seed_best} ({losses[seed_best]:.4f})"
        )
    return "\n".join(lines)


# What a log without ground truth shows about the CVR over all impressions: the rule's score, the CTCVR log loss
# over every impression and the CVR log loss on the clicked rows.
VISIBLE_METRICS = (recommendation.SCORE_METRIC, recommendation.GUARD_METRIC, "cvr_nll")


def _metrics_preferring(validation: dict, best: str, picked: str) -> list:
    """The observable validation metrics whose mean over runs is lower for `best` than for `picked`."""
    if best == picked:
        return []
    return [
        metric
        for metric in VISIBLE_METRICS
        if np.mean([r[metric] for r in validation[best]]) < np.mean([r[metric] for r in validation[picked]])
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument(
        "--selection_strengths",
        default="1,0",
        help="Regimes: weight of the simulator's hidden intent (0 = selection on features only).",
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument(
        "--world",
        default="{}",
        help="Simulator settings beside the regime, as JSON of SimulationConfig fields, e.g. a low-CTR world: "
        '\'{"ctr_bias": -3.2, "cvr_bias": -3.9}\'.',
    )
    parser.add_argument(
        "--learning_rate_schedule",
        default=config_lib.OptimizationConfig.learning_rate_schedule,
        help="The optimisation flag of trainer.task, to measure a schedule against the default.",
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument(
        "--methods", default=",".join(_distinct_methods()), help="Comma-separated; NAME[arg=value;...] for a variant."
    )
    parser.add_argument(
        "--architectures",
        default=DEFAULT_ARCHITECTURE,
        help="Comma-separated BACKBONE/INTERACTION (e.g. shared_bottom/none,ple/cross); 'default': each method's "
        "own backbone, no interaction. Every method is trained on each.",
    )
    parser.add_argument(
        "--runs_jsonl",
        default=None,
        help="Append every run's test and validation metrics here, one JSON object per line.",
    )
    parser.add_argument(
        "--report",
        default=None,
        help="Only print the tables of a --runs_jsonl file (the last line per regime, seed and "
        "method wins, so reruns of some methods replace their earlier runs).",
    )
    args = parser.parse_args()
    if args.report:
        report_from_jsonl(args.report)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    world = json.loads(args.world)
    if "selection_strength" in world:
        parser.error("--world: give the selection strength by --selection_strengths")
    simulate.SimulationConfig(**world)  # an unknown field fails before any work
    methods = [REFERENCE] + [m for m in args.methods.split(",") if m != REFERENCE]
    architectures = args.architectures.split(",")
    for architecture in architectures:  # a bad name fails before any work
        config_lib.ArchitectureConfig(**architecture_arguments(architecture))
    root = tempfile.mkdtemp(prefix="tfcvr-quality-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)  # the simulated logs; --runs_jsonl keeps the results
    for strength in (float(s) for s in args.selection_strengths.split(",")):
        # {architecture: {method: [metrics of each seed]}}
        results = {a: {m: [] for m in methods} for a in architectures}
        validation = {a: {m: [] for m in methods} for a in architectures}
        for seed in seeds:
            folder = os.path.join(root, f"strength{strength}-seed{seed}")
            data = simulate.write_simulation(
                folder,
                args.rows,
                seed=seed,
                eval_fraction=0.2,
                valid_fraction=0.1,
                config=simulate.SimulationConfig(**{**world, "selection_strength": strength}),
            )
            for architecture in architectures:  # the same data and seed: paired across architectures too
                config = config_lib.BenchmarkConfig(
                    architecture=config_lib.ArchitectureConfig(**architecture_arguments(architecture)),
                    optimization=config_lib.OptimizationConfig(
                        epochs=args.epochs,
                        batch_size=args.batch_size,
                        seed=seed,
                        learning_rate_schedule=args.learning_rate_schedule,
                    ),
                    leaderboard=config_lib.LeaderboardConfig(models=methods, runs=1),
                    report=config_lib.ReportConfig(output_dir=os.path.join(folder, architecture.replace("/", "-"))),
                )
                board = Leaderboard(data, config, log=lambda line: None).run()
                for method in methods:
                    run = board["results"][method][0]
                    results[architecture][method].append(run["metrics"])
                    validation[architecture][method].append(run["validation_metrics"])
                    print(
                        f"strength {strength} seed {seed} {architecture} {method}: "
                        + ", ".join(f"{key}={run['metrics'][key]:.4f}" for key, _ in COLUMNS),
                        flush=True,
                    )
                    if args.runs_jsonl:
                        with open(args.runs_jsonl, "a") as f:
                            record = {
                                "method": method,
                                "architecture": architecture,
                                "seed": seed,
                                "selection_strength": strength,
                                "rows": args.rows,
                                "epochs": args.epochs,
                                "world": world,
                                "learning_rate_schedule": args.learning_rate_schedule,
                                "selected_epoch": run["selected_epoch"],
                                "test": run["metrics"],
                                "validation": run["validation_metrics"],
                            }
                            f.write(json.dumps(record) + "\n")
        setup = (
            f"{args.rows} simulated rows (train/valid/test 70/10/20) of world {world or 'default'}, {args.epochs} "
            f"epoch(s), batch {args.batch_size}, learning-rate schedule {args.learning_rate_schedule}"
        )
        for architecture in architectures:
            print_report(strength, seeds, results[architecture], validation[architecture], f"{setup}, {architecture}")
        if len(architectures) > 1:
            print(architecture_table(strength, results))


DEFAULT_ARCHITECTURE = "default"
ARCHITECTURE_COLUMNS = (
    ("oracle_cvr_nll", "oracle CVR NLL"),
    ("cvr_auc", "CVR AUC (clicked)"),
    ("ctcvr_auc", "CTCVR AUC"),
)


def architecture_arguments(architecture: str) -> dict:
    """ArchitectureConfig fields of "BACKBONE/INTERACTION" ("default": the method's backbone, no interaction)."""
    if architecture == DEFAULT_ARCHITECTURE:
        return {}
    backbone, _, interaction = architecture.partition("/")
    return {"backbone": backbone, "interaction": interaction or "none"}


def architecture_table(strength, results: dict) -> str:
    """Per method and architecture: mean ± sd of ARCHITECTURE_COLUMNS and the paired Δ oracle CVR log loss with the
    first architecture (mean ± sd over seeds). `results`: {architecture: {method: [metrics of each seed]}}."""
    architectures = list(results)
    first = architectures[0]
    lines = [
        f"\n## selection_strength {strength}: architectures, each method paired with itself on {first}\n",
        "| method | architecture | "
        + " | ".join(title for _, title in ARCHITECTURE_COLUMNS)
        + f" | Δ oracle CVR NLL vs {first} |",
        "|---|---|" + "---|" * (len(ARCHITECTURE_COLUMNS) + 1),
    ]
    for method in results[first]:
        base = [r["oracle_cvr_nll"] for r in results[first][method]]
        for architecture in architectures:
            runs = results[architecture][method]
            cells = ["{:.4f} ± {:.4f}".format(*_mean_sd([r[key] for r in runs])) for key, _ in ARCHITECTURE_COLUMNS]
            delta = [r["oracle_cvr_nll"] - b for r, b in zip(runs, base)]
            cells.append("{:+.4f} ± {:.4f}".format(*_mean_sd(delta)) if architecture != first else "")
            lines.append(f"| {method} | {architecture} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_report(strength, seeds, results, validation, setup):
    """The tables of one regime: metrics, soundness, and the recommendation against the ground truth."""
    methods = list(results)
    print(
        f"\n## selection_strength {strength}: {len(seeds)} seeds ({','.join(map(str, seeds))}), {setup}, "
        "each method at its defaults\n"
    )
    print("| method | " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for method in methods:
        cells = ["{:.4f} ± {:.4f}".format(*_mean_sd([r[key] for r in results[method]])) for key, _ in COLUMNS]
        print(f"| {method} | " + " | ".join(cells) + " |")
    print()
    print(soundness_table(results))
    print()
    print(recommendation_check(results, validation), flush=True)


def report_from_jsonl(path):
    """Re-prints the tables from --runs_jsonl lines; a later line for the same regime, architecture, seed and method
    wins (so a rerun of some methods replaces their earlier runs). Lines without an architecture are "default"."""
    latest = {}
    with open(path) as f:
        for line in f:
            run = json.loads(line)
            architecture = run.get("architecture", DEFAULT_ARCHITECTURE)
            latest[(run["selection_strength"], architecture, run["seed"], run["method"])] = run
    for strength in sorted({key[0] for key in latest}, reverse=True):
        architectures = list(dict.fromkeys(key[1] for key in latest if key[0] == strength))
        keys = [key for key in latest if key[0] == strength]
        methods = [REFERENCE] + sorted({key[3] for key in keys} - {REFERENCE})
        seeds = sorted(
            seed
            for seed in {key[2] for key in keys}
            if all((strength, a, seed, m) in latest for a in architectures for m in methods)
        )
        results = {
            a: {m: [latest[(strength, a, seed, m)]["test"] for seed in seeds] for m in methods} for a in architectures
        }
        for architecture in architectures:
            validation = {
                m: [latest[(strength, architecture, seed, m)]["validation"] for seed in seeds] for m in methods
            }
            first = latest[(strength, architecture, seeds[0], REFERENCE)]
            setup = f"{first['rows']} simulated rows (train/valid/test 70/10/20), {first['epochs']} epoch(s)"
            print_report(strength, seeds, results[architecture], validation, f"{setup}, {architecture}")
        if len(architectures) > 1:
            print(architecture_table(strength, results))


if __name__ == "__main__":
    main()
