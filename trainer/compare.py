r"""Gate a retrained model: score two exports on the same records and test whether the candidate is worse.

    python -m trainer.compare --baseline=EXPORT_BASE/1700000000 --candidate=EXPORT_BASE \
        --eval_files=GLOB --schema=schema.json [--gate_metrics=ctcvr_log_loss] [--alpha=0.05] [--margin=0]
        [--output_dir=DIR]

Both exports are called through `serving_default` on the serialized records
(what TF Serving would answer), in one pass. For every record the command
computes each model's log losses, so the two are paired record by record:

* `ctcvr_log_loss`: every impression, served pCTR x pCVR against
  click x conversion (the entire-space quantity a real log observes without
  selection bias; the default gate);
* `ctr_log_loss`: every impression, pCTR against click;
* `cvr_log_loss_clicked`: clicked impressions, pCVR against conversion
  (observed only where clicked, so biased as a CVR measure; still a fair
  paired comparison of two models on the same rows).

It prints the mean difference (candidate - baseline) with its 95%
confidence interval and the one-sided p-value of "the candidate's loss is
larger" (`tfcvr.metrics.paired_difference`; cluster-robust over the
schema's group_key when it has one). The candidate is WORSE on a gate metric
when that p-value (of the test against baseline x (1 + margin)) is below
alpha / (number of gate metrics) and its mean loss exceeds that bound; a gate
metric that cannot be tested (a NaN score, fewer than two records or groups,
e.g. no clicks) counts as worse. Exit status: 0 when it is worse on none
(promote), 3 when it is worse on any (keep the baseline), 2 on a usage error,
1 on an unexpected failure - a scheduler can gate the label move on it.
`--output_dir` also receives comparison.json.
"""

import json
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import app, flags

from tfcvr import atomic, cli
from tfcvr.data import pipeline as pipeline_lib
from tfcvr.metrics.significance import paired_difference
from trainer import config as config_lib
from trainer import evaluate, preflight

FLAGS = flags.FLAGS
# Exit statuses: 2 is a usage error (tfcvr.cli) and 1 an unexpected failure (a traceback).
PROMOTE, WORSE = 0, 3
# Probabilities are clipped as the export clips them (the open interval).
_EPSILON = 1e-7


def _log_loss(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(probabilities.astype(np.float64), _EPSILON, 1 - _EPSILON)
    return -(labels * np.log(p) + (1 - labels) * np.log1p(-p))


def record_losses(predictions: dict, labels: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{metric: (per-record losses, mask of the records it covers)} of one model's predictions."""
    click = labels["click"].astype(np.float64)
    conversion = labels["conversion"].astype(np.float64)
    everywhere = np.ones_like(click, dtype=bool)
    return {
        "ctcvr_log_loss": (_log_loss(click * conversion, predictions["ctcvr"]), everywhere),
        "ctr_log_loss": (_log_loss(click, predictions["ctr"]), everywhere),
        "cvr_log_loss_clicked": (_log_loss(conversion, predictions["cvr"]), click == 1),
    }


METRICS = ("ctcvr_log_loss", "ctr_log_loss", "cvr_log_loss_clicked")


def check_gate_metrics(gate_metrics: Sequence[str]) -> None:
    """ValueError unless `gate_metrics` is a non-empty selection of METRICS."""
    unknown = sorted(set(gate_metrics) - set(METRICS))
    if unknown or not gate_metrics:
        raise ValueError(f"--gate_metrics: {unknown or 'none given'}; choose among {list(METRICS)}.")


def compare(
    baseline: dict,
    candidate: dict,
    labels: dict,
    gate_metrics: Sequence[str] = ("ctcvr_log_loss",),
    alpha: float = 0.05,
    margin: float = 0.0,
) -> dict:
    """The paired comparison of two models' predictions on the same records; see the module docstring."""
    check_gate_metrics(gate_metrics)
    groups = labels.get("group")
    base_losses, cand_losses = record_losses(baseline, labels), record_losses(candidate, labels)
    level = alpha / len(gate_metrics)
    results, worse = {}, []
    for metric in METRICS:
        (base, mask), (cand, _) = base_losses[metric], cand_losses[metric]
        group = None if groups is None else np.asarray(groups)[mask]
        result = paired_difference(cand[mask], base[mask], group)
        if metric in gate_metrics:
            # Worse: significantly above baseline x (1 + margin), tested on the differences against that bound.
            bound = paired_difference(cand[mask], base[mask] * (1 + margin), group)
            result["gate"] = {"p_worse": bound["p_greater"], "level": level}
            if not (np.isfinite(bound["mean_difference"]) and np.isfinite(bound["p_greater"])):
                # No evidence is no pass: a NaN score, or too few records or groups to test (e.g. no clicks).
                result["gate"]["untestable"] = (
                    f"{result['records']} records in {result['groups']} groups, mean difference "
                    f"{result['mean_difference']}"
                )
                worse.append(metric)
            elif bound["p_greater"] < level and bound["mean_difference"] > 0:
                worse.append(metric)
        results[metric] = result
    return {
        "metrics": results,
        "gate_metrics": list(gate_metrics),
        "alpha": alpha,
        "margin": margin,
        "worse_on": worse,
        "decision": "keep the baseline" if worse else "promote",
    }


def format_comparison(report: dict) -> str:
    lines = [
        f"{'metric':<22}{'baseline':>10}{'candidate':>11}{'difference':>12}  {'95% CI':<22}{'p(worse)':>10}  gate",
    ]
    for metric, r in report["metrics"].items():
        gate, p_worse = "", r["p_greater"]
        if "gate" in r:  # the gate's own test (against baseline x (1 + margin))
            p_worse = r["gate"]["p_worse"]
            gate = "pass"
            if metric in report["worse_on"]:
                gate = f"UNTESTABLE ({r['gate']['untestable']})" if "untestable" in r["gate"] else "WORSE"
        lines.append(
            f"{metric:<22}{r['baseline_mean']:>10.5f}{r['candidate_mean']:>11.5f}{r['mean_difference']:>+12.5f}  "
            f"[{r['ci_low']:+.5f}, {r['ci_high']:+.5f}]  {p_worse:>9.3g}  {gate}"
        )
    records = next(iter(report["metrics"].values()))
    level = report["alpha"] / len(report["gate_metrics"])
    lines.append(
        f"{records['records']} records ({records['groups']} independent groups). A gate metric is worse when "
        f"p(worse) < {level:.3g} and the loss exceeds baseline x {1 + report['margin']:g}. "
        f"Decision: {report['decision']}."
    )
    return "\n".join(lines)


def _define_flags():
    config_lib.define_flags(config_lib.ComparisonConfig, required=("baseline", "candidate"))
    config_lib.define_flags(
        config_lib.DataConfig,
        only=("eval_files", "schema", "invalid_conversion", "skip_corrupt_records"),
        required=("eval_files", "schema"),
    )
    config_lib.define_flags(config_lib.OptimizationConfig, only=("batch_size",))
    config_lib.define_flags(config_lib.ReportConfig, only=("output_dir",))


def main(argv: list[str]) -> int:
    del argv
    run = config_lib.config_from_flags(config_lib.CompareConfig, FLAGS)
    schema = preflight.load_schema(preflight.required_flag("--schema", run.data.schema))
    eval_files = preflight.required_flag("--eval_files", run.data.eval_files)
    preflight.check_files("--eval_files", eval_files, schema, run.data)
    versions = {
        flag: evaluate.resolve_version_flag(flag, preflight.required_flag(flag, path))
        for flag, path in (("--baseline", run.comparison.baseline), ("--candidate", run.comparison.candidate))
    }
    try:
        check_gate_metrics(run.comparison.gate_metrics)  # before the scoring pass
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    files = pipeline_lib.resolve_files(eval_files)
    pipeline = pipeline_lib.TFRecordPipeline(
        files,
        schema,
        run.optimization.batch_size,
        invalid_conversion=run.data.invalid_conversion,
        group=schema.group_key is not None,
        skip_corrupt_records=run.data.skip_corrupt_records,
    )
    try:
        (baseline, candidate), labels = evaluate.score([versions["--baseline"], versions["--candidate"]], pipeline)
    except ValueError as e:  # e.g. no records left to compare
        raise app.UsageError(f"--eval_files={run.data.eval_files}: {e}") from None
    report = compare(
        baseline,
        candidate,
        labels,
        run.comparison.gate_metrics,
        run.comparison.alpha,
        run.comparison.margin,
    )
    report.update(
        baseline=versions["--baseline"],
        candidate=versions["--candidate"],
        eval_files=files,
        skipped_corrupt_records=pipeline.corrupt_records_skipped,
    )
    print(f"candidate {versions['--candidate']} vs baseline {versions['--baseline']}")
    print(format_comparison(report))
    if run.report.output_dir:
        tf.io.gfile.makedirs(run.report.output_dir)
        atomic.write_file(
            os.path.join(run.report.output_dir, "comparison.json"), json.dumps(report, indent=2, allow_nan=True) + "\n"
        )
    return WORSE if report["worse_on"] else PROMOTE


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
