r"""Which epoch-selection rule? Replays rules on the per-epoch lines of a sweep, without training.

    python benchmarks/debiasing_sweep.py --mode full --runs_jsonl sweep.jsonl
    python benchmarks/selection_replay.py sweep.jsonl [--z 2,3,4] [--naive_ratio 1.1,1.2,1.3]

The sweep writes every epoch of every run (epoch kind "every": its test
metrics as served and its validation metrics as selection saw them). For each
rule this picks each run's epoch from those validation metrics alone and
scores the pick on the test metrics of that epoch. Rules: the selection
metric alone (`ctcvr_nll`, the record); the leaderboard's epoch guard
(`trainer.epoch_selection`) at each `--z`; and, for comparison, a limit
relative to naive, each epoch's Σ pCVR on the validation clicked rows at most
`--naive_ratio` times naive's at its selected epoch. Runs with a single epoch
(warm-started days) keep it: a rule changes a warm day only through its
day-1 pick, which this replay does not retrain.

Per rule it prints: epochs changed from the record's; runs whose oracle CVR
log loss is worse than naive's (same world, day and seed) by more than
`RUNAWAY` (the record's runaway runs were 0.09-0.33 worse); the worst such
difference; the mean difference over all methods (but `--exclude`) and runs; and the
recommendation's verdicts (`debiasing_quality.recommendation_check`) over the
world-days. docs/benchmarks.md, "The epoch guard and the ranking guard",
has the record.
"""

import argparse
import collections
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debiasing_quality  # noqa: E402 (the sibling benchmark: the recommendation check)

from trainer.epoch_selection import EpochSelection  # noqa: E402

SELECTION_METRIC = "ctcvr_nll"
RUNAWAY = 0.05  # oracle CVR log loss above naive's in the same run


def load(lines: list) -> tuple[dict, dict]:
    """({run: {epoch: line}} of the "every" lines, {run: line} of the "selected"); run = (world, day, seed, method)."""
    every: dict = collections.defaultdict(dict)
    selected = {}
    for line in lines:
        run = (line["world"], line["day"], line["seed"], line["method"])
        if line["epoch_kind"] == "every":
            every[run][line["epoch"]] = line
        elif line["epoch_kind"] == "selected":
            selected[run] = line
    return every, selected


def choose(epochs: dict, rule: tuple, naive_pcoc: float) -> int:
    """The epoch `rule` keeps of {epoch: line}: ("metric",), ("z", z) or ("naive_ratio", ratio)."""
    kind = rule[0]
    if kind == "naive_ratio":
        ratio = rule[1]
        within = {e: line for e, line in epochs.items() if line["validation"]["cvr_pcoc"] <= ratio * naive_pcoc}
        if not within:  # as the guard: the least over
            return min(epochs, key=lambda e: epochs[e]["validation"]["cvr_pcoc"])
        return min(within, key=lambda e: within[e]["validation"][SELECTION_METRIC])
    selection = EpochSelection(SELECTION_METRIC, "min", kind == "z", rule[1] if kind == "z" else 0.0)
    for epoch in sorted(epochs):
        selection.offer(epoch, epochs[epoch]["validation"], lambda: None)
    return selection.selected.epoch


def replay(lines: list, rule: tuple, excluded: tuple = ()) -> dict:
    """The rule's picks scored: {"changed", "runaways", "worst", "mean", "verdicts": [(world, day, verdict)]}.

    `excluded`: methods left out of the differences from naive (the recommendation still sees them).
    """
    every, selected = load(lines)
    picked = {}
    for run, line in selected.items():
        epochs = every.get(run, {})
        if len(epochs) < 2:
            picked[run] = (line["epoch"], line["test"], line["validation"])
            continue
        naive_pcoc = selected[(*run[:3], debiasing_quality.REFERENCE)]["validation"]["cvr_pcoc"]
        epoch = choose(epochs, rule, naive_pcoc)
        scored = line if epoch == line["epoch"] else epochs[epoch]  # the selected line when it is the same epoch
        picked[run] = (epoch, scored["test"], scored["validation"])
    differences, verdicts = [], []
    for world, day in sorted({run[:2] for run in picked}, key=lambda key: (key[0], key[1] or 0)):
        runs = [run for run in picked if run[:2] == (world, day)]
        seeds = sorted({run[2] for run in runs})
        methods = [debiasing_quality.REFERENCE] + sorted({run[3] for run in runs} - {debiasing_quality.REFERENCE})
        results = {m: [picked[(world, day, s, m)][1] for s in seeds] for m in methods}
        validation = {m: [picked[(world, day, s, m)][2] for s in seeds] for m in methods}
        naive = [r["oracle_cvr_nll"] for r in results[debiasing_quality.REFERENCE]]
        for method in [m for m in methods[1:] if m not in excluded]:
            differences += [r["oracle_cvr_nll"] - b for r, b in zip(results[method], naive)]
        check = debiasing_quality.recommendation_check(results, validation)
        verdicts.append((world, day, "PASS" if "Verdict: PASS" in check else "FAIL"))
    differences = np.array(differences)
    finite = differences[np.isfinite(differences)]  # a diverged run's NaN is the soundness table's to count
    return {
        "changed": sum(picked[run][0] != line["epoch"] for run, line in selected.items()),
        "runaways": int(np.sum(finite > RUNAWAY)),
        "worst": float(finite.max()) if finite.size else float("nan"),
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "verdicts": verdicts,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("runs_jsonl", help="A debiasing_sweep.py --runs_jsonl file (with its per-epoch lines).")
    parser.add_argument("--z", default="2,3,4", help="Epoch-guard limits to replay, in standard errors.")
    parser.add_argument("--naive_ratio", default="1.1,1.2,1.3", help="Limits relative to naive's Σ pCVR.")
    parser.add_argument(
        "--exclude",
        default="naive_imputation",
        help="Methods left out of the differences from naive (naive_imputation estimates a CTCVR, not a CVR).",
    )
    args = parser.parse_args()
    with open(args.runs_jsonl) as f:
        lines = [json.loads(line) for line in f]
    rules = [("metric",)] + [("z", float(z)) for z in args.z.split(",") if z]
    rules += [("naive_ratio", float(r)) for r in args.naive_ratio.split(",") if r]
    print(f"| rule | epochs changed | runs > {RUNAWAY} above naive | worst vs naive | mean vs naive | recommendation |")
    print("|---|---|---|---|---|---|")
    for rule in rules:
        scored = replay(lines, rule, tuple(args.exclude.split(",")))
        name = {"metric": f"{SELECTION_METRIC} alone", "z": "guard z = {}", "naive_ratio": "≤ {}x naive's"}[rule[0]]
        passes = sum(verdict == "PASS" for *_, verdict in scored["verdicts"])
        print(
            f"| {name.format(*rule[1:])} | {scored['changed']} | {scored['runaways']} | {scored['worst']:+.4f} | "
            f"{scored['mean']:+.5f} | PASS {passes}/{len(scored['verdicts'])} |"
        )


if __name__ == "__main__":
    main()
