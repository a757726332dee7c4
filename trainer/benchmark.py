r"""Leaderboard: which debiasing method to ship, on your data.

    python -m trainer.benchmark --models=naive,esmm,multi_dr,ddpo,chorus --runs=3
        [--train_files=GLOB --valid_files=GLOB --eval_files=GLOB --schema=schema.json]
        [--epochs=1] [--selection_metric=ctcvr_nll] [--output_dir=leaderboard]

Every method trains --runs times; run r uses seed --seed+r for every method
(data order and initialisation), so runs are paired across methods. After
each epoch the model is scored on the validation files and the epoch with
the best --selection_metric is kept, among the epochs that do not
over-predict the validation conversions on clicked rows beyond their noise
(with --positive_selection, the default: `trainer.epoch_selection`); only
then is the model scored on
--eval_files (the test split), once. Selection never reads the test files
(published code that picks the best test epoch reports optimistic numbers).

`naive` is always trained: it is the baseline of the significance tests, and
its pCTR is the reference CTR model of D-AUC/D-NLL (UKD's debiased metrics
weigh every method by the same independently trained pCTR) and of the pCTR
buckets of the calibration curves, so every method is compared on the same
impressions.

The leaderboard ends with a recommendation computed from validation metrics
only, what a user with a real log can observe (`trainer.recommendation`
states the rule): guards against diverged runs, collapsed calibration, a
worse CTCVR log loss than naive's, a CVR AUC on clicks more than 0.02 below
naive's and (positive selection) pCVR above naive's on clicked rows, then
the lowest validation D-NLL, with
its runner-up and whether a paired t-test separates them.

Writes into --output_dir: leaderboard.md (mean ± std per metric over runs;
paired t-test p-values against naive and against the best other method),
leaderboard.csv (long form: method, metric, mean, std, p-values), runs.csv
(one row per method and run, with the selected and the set-aside epochs), leaderboard.json, and
plots/: metrics.png (bars with ±std), calibration.png (pCVR vs observed CVR
per pCTR bucket; with ground truth also vs true CVR over all impressions),
bias.png (pCVR bias on clicked vs unclicked impressions; needs ground truth).
Without data flags it runs on the built-in simulator.
"""

import contextlib
import csv
import functools
import io
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from tfcvr import atomic, cli, models
from tfcvr import metrics as metrics_lib
from tfcvr.data import pipeline as pipeline_lib
from tfcvr.data import schema as schema_lib
from tfcvr.data import simulate, statistics
from tfcvr.metrics import calibration, plots
from tfcvr.metrics.significance import paired_p_value
from tfcvr.models import intercepts
from trainer import config as config_lib
from trainer import method_params, model_identity, preflight, recommendation, warm_start
from trainer.epoch_selection import OVER_PREDICTION_Z, EpochSelection, better, selection_direction
from trainer.loop import STEPS_PER_EXECUTION, TrainingLoop

FLAGS = flags.FLAGS
BASELINE = "naive"
DEFAULT_OUTPUT_DIR = "leaderboard"
# Metrics of the leaderboard table, in order, when present; direction of "better".
TABLE_METRICS = {
    "cvr_auc": "max",
    "d_cvr_auc": "max",
    "cvr_nll": "min",
    "d_cvr_nll": "min",
    "ctcvr_auc": "max",
    "ctcvr_nll": "min",
    "ctcvr_gauc": "max",
    "ctr_auc": "max",
    "cvr_pcoc": "one",
    "oracle_cvr_auc": "max",
    "oracle_cvr_nll": "min",
    "cvr_bias_clicked": "zero",
    "cvr_bias_unclicked": "zero",
}
SIGNIFICANCE_LEVEL = 0.05


def best_method(names: Iterable[str], metric: str, summary: dict) -> str | None:
    """The name in `names` with the best mean of `metric` (the first on ties; None when `names` is empty)."""
    best = None
    for name in names:
        if best is None or better(TABLE_METRICS[metric], summary[name][metric][0], summary[best][metric][0]):
            best = name
    return best


class Leaderboard:
    """Trains, selects and scores methods; `run()` writes the outputs.

    Args:
      files: {"train", "valid", "eval", "schema"} file globs and schema path.
      config: a `BenchmarkConfig` (the command line's settings): the methods
        (naive is added first when missing; an entry may carry constructor
        arguments, "ukd[distillation_loss_weight=0.3;ctr_loss_weight=1]"), runs (seeds seed, seed+1, ...),
        the architecture shared by all methods, optimisation, the selection
        metric, the output folder; with `data.cache_input` the training and
        validation records are parsed once for all methods and runs.
      log: progress printer.
    """

    def __init__(self, files: dict, config: config_lib.BenchmarkConfig, log=print):
        self.direction = selection_direction(config.leaderboard.selection_metric)
        self.config = config
        self.data = files
        self.schema = schema_lib.load_schema(files["schema"])
        self.output_dir = config.report.output_dir or DEFAULT_OUTPUT_DIR
        self.model_names = [BASELINE] + [n for n in dict.fromkeys(config.leaderboard.models) if n != BASELINE]
        # Unknown names and arguments fail before any training; an entry may carry arguments: ukd[ctr_loss_weight=1].
        self.methods = {entry: method_params.parse_method_entry(entry) for entry in self.model_names}
        self.runs = config.leaderboard.runs
        self.epochs = config.optimization.epochs
        self.batch_size = config.optimization.batch_size
        self.seed = config.optimization.seed
        self.selection_metric = config.leaderboard.selection_metric
        self.log = log
        self.ground_truth = pipeline_lib.has_ground_truth(pipeline_lib.resolve_files(files["eval"]))
        # One pipeline per split for every method and run (runs differ in the shuffle seed only).
        self._train = self._pipeline(files["train"], shuffle=True, seed=self.seed, cache=config.data.cache_input)
        self._valid = self._pipeline(files["valid"], cache=config.data.cache_input)

    def _pipeline(self, files, **kwargs):
        return pipeline_lib.TFRecordPipeline(
            files,
            self.schema,
            self.batch_size,
            invalid_conversion=self.config.data.invalid_conversion,
            skip_corrupt_records=self.config.data.skip_corrupt_records,
            **kwargs,
        )

    @functools.cached_property
    def _unshuffled_train(self) -> pipeline_lib.TFRecordPipeline:
        return self._pipeline(self.data["train"])

    # The unshuffled splits' datasets, built once and iterated by every epoch, method and run: building one traces
    # its parsing functions again, a second or so per method and run that made up much of a small log's time.
    @functools.cached_property
    def _unshuffled_train_batches(self) -> tf.data.Dataset:
        return self._unshuffled_train.dataset()

    @functools.cached_property
    def _valid_batches(self) -> tf.data.Dataset:
        return self._valid.dataset()

    @functools.cached_property
    def _test(self) -> pipeline_lib.TFRecordPipeline:
        return self._pipeline(
            self.data["eval"], ground_truth=self.ground_truth, group=self.schema.group_key is not None
        )

    @functools.cached_property
    def _test_batches(self) -> tf.data.Dataset:
        return self._test.dataset()

    @functools.cached_property
    def data_statistics(self) -> dict:
        """`numeric_statistics` and `label_rates` of the unshuffled training files: one read for every run."""
        with self._train.named_errors():
            return statistics.training_statistics(self._unshuffled_train_batches, self.schema)

    @functools.cached_property
    def steps_per_epoch(self) -> int | None:
        """Optimizer steps of one pass over the training files, read once when the learning-rate schedule needs them."""
        if not self.config.optimization.needs_steps_per_epoch:
            return None
        with self._train.named_errors():
            return max(1, -(-self._train.record_count() // self.batch_size))

    def _fresh_model(self, name: str, seed: int) -> models.CVRModel:
        """Method `name` built and compiled from `seed` (the previous run's graph released first)."""
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        method, params = self.methods[name]
        return config_lib.build_model(
            models.get(method),
            self.schema,
            self.config.architecture,
            self.config.optimization,
            params,
            self.data_statistics,
            self.steps_per_epoch,
        )

    def train_and_select(
        self, name: str, run: int, initial_weights: dict | None = None, on_epoch=None
    ) -> tuple[models.CVRModel, dict, tuple[dict, dict]]:
        """Trains `name` with seed+run, keeping the weights of the epoch `trainer.epoch_selection` selects.

        That is the best validation `selection_metric` among the epochs whose clicked-row pCVR does not exceed the
        validation conversions beyond their noise (with `positive_selection`); history["set_aside_epochs"] lists
        the epochs that did.

        `initial_weights`: {variable path: value} to start from instead of the
        initialisation (a warm start from an earlier day's `weights_by_path`,
        weights only, as `--warm_start_from` does). `on_epoch(epoch, model, validation)`:
        called after each epoch's validation with that epoch's validation (predictions, labels), what selection
        saw (a benchmark scoring every epoch).
        Returns (model, history, (predictions, labels) of the validation files at the selected epoch). With
        `refit_intercepts` (not "none") the selected weights' served intercepts are then refitted on the training
        files (history["intercepts"]) and the validation predictions are those of the refitted model; the history's
        `valid_history`, the selection metric per epoch, is that of the heads before the refit;
        `set_aside_epochs` the epochs over the limit, `all_epochs_set_aside` whether every epoch was.
        """
        seed = self.seed + run
        model = self._fresh_model(name, seed)
        train, valid = self._train.with_seed(seed), self._valid
        checkpoint_dir = tempfile.mkdtemp(prefix=f"{name}-{run}-", dir=self.output_dir)
        loop = TrainingLoop(
            model,
            tf.distribute.get_strategy(),
            checkpoint_dir=checkpoint_dir,
            log_every=10**9,
            checkpoint_every=10**9,
            steps_per_execution=STEPS_PER_EXECUTION,
        )
        weights = model.weights_by_path()
        for path, value in (initial_weights or {}).items():
            if not warm_start.is_refitted(path):  # as --warm_start_from: the served intercepts are refitted anew
                weights[path].assign(value)
        history = []
        selector = EpochSelection(self.selection_metric, self.direction, self.config.leaderboard.positive_selection)
        try:
            for epoch in range(1, self.epochs + 1):
                with train.named_errors():
                    loop.train(
                        lambda context, epoch_index: train.dataset(epoch_index=epoch_index), epoch, self.batch_size
                    )
                with valid.named_errors():
                    validation = metrics_lib.collect_predictions(model, self._valid_batches)
                scores = metrics_lib.compute_metrics(*validation)
                history.append(scores[self.selection_metric])
                note = selector.offer(
                    epoch,
                    scores,
                    lambda validation=validation: (
                        {path: variable.numpy() for path, variable in weights.items()},
                        validation,
                    ),
                )
                self.log(
                    f"  {name} run {run + 1}/{self.runs} epoch {epoch}/{self.epochs}: valid "
                    f"{self.selection_metric}={history[-1]:.5f}" + (f" ({note})" if note else "")
                )
                if on_epoch is not None:
                    on_epoch(epoch, model, validation)
        finally:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        try:
            chosen = selector.selected
        except ValueError as e:  # no epoch was trained (epochs < 1)
            raise ValueError(f"{e} Received: {self.epochs}") from None
        if selector.all_set_aside:
            self.log(
                f"  {name} run {run + 1}: every epoch over-predicts the validation conversions on clicked rows; "
                f"kept epoch {chosen.epoch}, the least over"
            )
        best_epoch, (best_weights, best_validation) = chosen.epoch, chosen.state
        for path, value in best_weights.items():
            weights[path].assign(value)
        selection: dict[str, Any] = {
            "selected_epoch": best_epoch,
            "valid_history": history,
            "set_aside_epochs": selector.set_aside,
            "all_epochs_set_aside": selector.all_set_aside,
            "seed": seed,
        }
        if self.config.optimization.refit_intercepts != "none":
            selection["intercepts"] = self.refit_intercepts(model, self.config.optimization.refit_intercepts)
            if "skipped" in selection["intercepts"]:
                self.log(
                    f"  {name} run {run + 1}: served intercepts NOT refitted: {selection['intercepts']['skipped']}"
                )
            with valid.named_errors():  # the selected epoch's validation outputs as the refitted model serves them
                best_validation = metrics_lib.collect_predictions(model, self._valid_batches)
        return model, selection, best_validation

    def refit_intercepts(self, model: models.CVRModel, target: str) -> dict:
        """Refits `model`'s served intercepts to `target` on the training files (`intercepts.refit_or_skip`)."""
        with self._train.named_errors():
            return intercepts.refit_or_skip(model, self._unshuffled_train_batches, target)

    def training_predictions(self, model: models.CVRModel) -> tuple[dict, dict]:
        """(predictions, labels) on the training files, unshuffled: what a refit of the intercepts reads."""
        with self._train.named_errors():
            return metrics_lib.collect_predictions(model, self._unshuffled_train_batches)

    def score_test(self, model: models.CVRModel) -> tuple[dict, dict]:
        """(predictions, labels) on the test files: read only after selection."""
        with self._test.named_errors():
            return metrics_lib.collect_predictions(model, self._test_batches)

    def run(self) -> dict:
        """Every method x run; writes the tables and plots; returns the leaderboard dict."""
        with _expected_retracing():
            return self._run()

    def _run(self) -> dict:
        tf.io.gfile.makedirs(os.path.join(self.output_dir, "plots"))
        results: dict[str, list[dict]] = {name: [] for name in self.model_names}  # per method: one dict per run
        curves: dict[str, list[list[dict]]] = {name: [] for name in self.model_names}  # per method: a curve per run
        total, done = len(self.model_names) * self.runs, 0
        for run in range(self.runs):
            reference_ctr = valid_reference_ctr = None
            for name in self.model_names:
                done += 1
                self.log(f"[{done}/{total}] {name} run {run + 1}/{self.runs} (seed {self.seed + run})")
                try:
                    model, selection, (valid_predictions, valid_labels) = self.train_and_select(name, run)
                except FloatingPointError as e:
                    if name == BASELINE:
                        raise
                    # Counted, not hidden: NaN metrics, and the recommendation's guard sets the method aside.
                    self.log(f"  {name} run {run + 1} DIVERGED: {e}")
                    results[name].append(
                        {
                            "selected_epoch": None,
                            "valid_history": [],
                            "set_aside_epochs": [],
                            "all_epochs_set_aside": False,
                            "seed": self.seed + run,
                            "diverged": str(e),
                            "metrics": {},
                            "validation_metrics": {},
                        }
                    )
                    continue
                # naive comes first: its own pCTR is then the reference of its D-NLL, as of everyone's.
                valid_metrics = metrics_lib.compute_metrics(
                    valid_predictions, valid_labels, reference_ctr=valid_reference_ctr
                )
                predictions, labels = self.score_test(model)
                if name == BASELINE:
                    reference_ctr, valid_reference_ctr = predictions["ctr"], valid_predictions["ctr"]
                test_metrics = metrics_lib.compute_metrics(predictions, labels, reference_ctr=reference_ctr)
                results[name].append({**selection, "metrics": test_metrics, "validation_metrics": valid_metrics})
                if reference_ctr is None:  # naive is trained first (model_names[0]) and sets it, or raises
                    raise RuntimeError(f"{BASELINE!r} must be scored before {name!r}: its pCTR buckets every curve.")
                curves[name].append(
                    calibration.calibration_by_bucket(
                        reference_ctr,
                        predictions["cvr"],
                        labels["click"],
                        labels["conversion"],
                        self.config.report.calibration_buckets,
                        true_cvr=labels.get("true_cvr"),
                    )
                )
                self.log(
                    f"  {name} run {run + 1}: epoch {selection['selected_epoch']} selected; test "
                    + ", ".join(f"{k}={test_metrics[k]:.4f}" for k in TABLE_METRICS if k in test_metrics)
                )
        board = self._summarise(results, curves)
        self._write(board)
        return board

    def _summarise(self, results, curves) -> dict:
        names = self.model_names
        metrics_present = [m for m in TABLE_METRICS if m in results[BASELINE][0]["metrics"]]
        values = {
            n: {m: [r["metrics"].get(m, float("nan")) for r in results[n]] for m in metrics_present} for n in names
        }
        summary = {
            n: {m: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0) for m, v in values[n].items()}
            for n in names
        }
        significance = {}
        for n in names:
            for m in metrics_present:
                best_other = best_method([o for o in names if o != n], m, summary)
                significance[(n, m)] = {
                    "p_vs_naive": paired_p_value(values[n][m], values[BASELINE][m]) if n != BASELINE else float("nan"),
                    "best_other": best_other,
                    "p_vs_best_other": paired_p_value(values[n][m], values[best_other][m])
                    if best_other
                    else float("nan"),
                }
        mean_curves = {n: _mean_curve(curves[n]) for n in names}
        advice = recommendation.recommend(
            {n: [r["validation_metrics"] for r in results[n]] for n in names},
            BASELINE,
            self.config.leaderboard.positive_selection,
        )
        return {
            "names": names,
            "metrics": metrics_present,
            "summary": summary,
            "significance": significance,
            "results": results,
            "curves": mean_curves,
            "recommendation": advice,
        }

    def _write(self, board) -> None:
        """leaderboard.md, leaderboard.csv, runs.csv, plots/ and, last, leaderboard.json: each written whole or not.

        A leaderboard.json from an earlier run of the same leaderboard is
        removed first, so an output folder with a leaderboard.json holds a
        complete set and one without it an incomplete one.
        """
        out = self.output_dir
        names, metrics_present, summary, significance = (
            board[k] for k in ("names", "metrics", "summary", "significance")
        )
        final = os.path.join(out, "leaderboard.json")
        if tf.io.gfile.exists(final):
            tf.io.gfile.remove(final)
        atomic.write_file(os.path.join(out, "leaderboard.md"), leaderboard_markdown(board, self.describe()))
        rows: list[list] = [["method", "metric", "mean", "std", "runs", "p_vs_naive", "best_other", "p_vs_best_other"]]
        for n in names:
            for m in metrics_present:
                s = significance[(n, m)]
                rows.append([n, m, *summary[n][m], self.runs, s["p_vs_naive"], s["best_other"], s["p_vs_best_other"]])
        atomic.write_file(os.path.join(out, "leaderboard.csv"), _csv(rows))
        all_metrics = sorted({k for n in names for r in board["results"][n] for k in r["metrics"]})
        rows = [
            ["method", "run", "seed", "selected_epoch", f"valid_{self.selection_metric}", "set_aside_epochs"]
            + all_metrics
        ]
        for n in names:
            for run, r in enumerate(board["results"][n]):
                chosen = r["valid_history"][r["selected_epoch"] - 1] if r["selected_epoch"] else "diverged"
                set_aside = ";".join(str(e) for e in r["set_aside_epochs"])
                rows.append(
                    [n, run, r["seed"], r["selected_epoch"], chosen, set_aside]
                    + [r["metrics"].get(k, "") for k in all_metrics]
                )
        atomic.write_file(os.path.join(out, "runs.csv"), _csv(rows))
        self._write_plots(board)
        leaderboard = {
            "setup": self.describe(),
            "recommendation": board["recommendation"],
            "summary": summary,
            "results": board["results"],
            "calibration_by_reference_pctr_bucket": board["curves"],
            "significance": {f"{n}/{m}": s for (n, m), s in significance.items()},
        }
        atomic.write_file(final, json.dumps(leaderboard, indent=2, allow_nan=True))

    def _write_plots(self, board) -> None:
        """plots/: metrics.png, calibration.png and, with ground truth, bias.png (the `plots` extra)."""
        if not plots.available():
            logging.warning('plots/ not drawn: matplotlib is not installed (pip install "tfcvr[plots]").')
            return
        out, summary, metrics_present = self.output_dir, board["summary"], board["metrics"]
        plots.plot_metric_bars(
            summary,
            metrics_present,
            os.path.join(out, "plots", "metrics.png"),
            title=f"test metrics, mean ± std over {self.runs} run(s)",
        )
        plots.plot_calibration(
            board["curves"],
            os.path.join(out, "plots", "calibration.png"),
            title="pCVR by bucket of the reference (naive) pCTR",
        )
        if self.ground_truth:
            plots.plot_bias(summary, os.path.join(out, "plots", "bias.png"))

    def describe(self) -> dict:
        """The files read, the seeds and the full configuration (leaderboard.json's "setup")."""
        return {
            "data": self.data,
            # Damaged files whose unreadable rest --skip_corrupt_records skipped, per split ([] when off).
            "skipped_corrupt_records": {
                split: self._pipeline(self.data[split]).corrupt_records_skipped for split in ("train", "valid", "eval")
            },
            "runs": self.runs,
            "seeds": [self.seed + r for r in range(self.runs)],
            "epochs": self.epochs,
            "selection_metric": self.selection_metric,
            "config": self.config.to_dict(),
        }


def _csv(rows: list[list]) -> str:
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    return text.getvalue()


class _RetracingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _expected_retracing():
    """Hides TensorFlow's retracing warning while the leaderboard runs.

    Every (method, run) is a new model with new traced steps, by design; TensorFlow counts traces per code
    location and would warn about "excessive retracing" after a few runs, which is not a defect here.
    """
    retracing = _RetracingFilter()
    tf.get_logger().addFilter(retracing)
    try:
        yield
    finally:
        tf.get_logger().removeFilter(retracing)


def _mean_curve(per_run: list) -> list:
    """Bucket-wise mean over runs of calibration rows (NaNs ignored)."""
    rows = []
    for bucket_rows in zip(*per_run):
        row = {}
        for key in bucket_rows[0]:
            column = np.array([r[key] for r in bucket_rows], dtype=np.float64)
            row[key] = float(np.nanmean(column)) if np.isfinite(column).any() else float("nan")
        rows.append(row)
    return rows


def _cell(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def _set_aside_note(board: dict, setup: dict) -> str:
    """What the epoch guard did (`trainer.epoch_selection`), for the table's caption; "" when it is off."""
    if not setup["config"]["leaderboard"]["positive_selection"]:
        return ""
    runs = [r for name in board["names"] for r in board["results"][name]]
    guarded = sum(bool(r["set_aside_epochs"]) and not r["all_epochs_set_aside"] for r in runs)
    over = sum(r["all_epochs_set_aside"] for r in runs)
    return (
        f", among the epochs whose validation pCVR on clicked rows is at most 1 + {OVER_PREDICTION_Z:g}/√conversions "
        f"times the conversions there (in {guarded} of {len(runs)} runs an epoch was set aside"
        + (f"; in {over} every epoch was over and the least over was kept" if over else "")
        + ")"
    )


def leaderboard_markdown(board: dict, setup: dict) -> str:
    """The leaderboard as markdown: a mean ± std table with significance marks and p-value tables."""
    names, metrics_present, summary, significance = (board[k] for k in ("names", "metrics", "summary", "significance"))
    lines = [
        f"Test metrics, mean ± std over {setup['runs']} paired run(s) (seeds {setup['seeds']}); epoch selected on "
        f"validation `{setup['selection_metric']}` out of {setup['epochs']}{_set_aside_note(board, setup)}. "
        f"`*`: differs from naive, `‡`: differs from the best other method (paired t-test, p < {SIGNIFICANCE_LEVEL}). "
        "Best mean in bold.",
        "",
        "| method | " + " | ".join(metrics_present) + " |",
        "|---|" + "---|" * len(metrics_present),
    ]
    best = {m: best_method(names, m, summary) for m in metrics_present}
    for n in names:
        cells = []
        for m in metrics_present:
            mean, std = summary[n][m]
            text = f"{_cell(mean)} ± {_cell(std)}"
            s = significance[(n, m)]
            marks = ("*" if s["p_vs_naive"] < SIGNIFICANCE_LEVEL else "") + (
                "‡" if s["p_vs_best_other"] < SIGNIFICANCE_LEVEL else ""
            )
            cells.append((f"**{text}**" if best[m] == n else text) + marks)
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for title, key in (
        ("p-values against naive", "p_vs_naive"),
        ("p-values against the best other method (named)", "p_vs_best_other"),
    ):
        lines += [
            "",
            f"{title} (paired t-test over runs):",
            "",
            "| method | " + " | ".join(metrics_present) + " |",
            "|---|" + "---|" * len(metrics_present),
        ]
        for n in names:
            cells = []
            for m in metrics_present:
                s = significance[(n, m)]
                cells.append(_cell(s[key]) + (f" ({s['best_other']})" if key == "p_vs_best_other" else ""))
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + recommendation.recommendation_markdown(board["recommendation"])


def _define_flags():
    for section in (
        config_lib.DataConfig,
        config_lib.ArchitectureConfig,
        config_lib.OptimizationConfig,
        config_lib.LeaderboardConfig,
        config_lib.ReportConfig,
    ):
        config_lib.define_flags(section)


def _check_previous_results(output_dir: str, config: config_lib.BenchmarkConfig) -> None:
    """Refuses to overwrite another leaderboard's results (same settings: a re-run, allowed)."""
    path = os.path.join(output_dir, "leaderboard.json")
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as f:
        previous = json.load(f).get("setup", {}).get("config", {})
    try:  # a setting added since those results were written reads at its default
        previous = config_lib.BenchmarkConfig.from_dict(previous, source=path).to_dict()
    except (ValueError, TypeError):
        pass  # settings this version does not know: compared as recorded
    changed = model_identity.differences(previous, config.to_dict()) if previous else ["settings not recorded"]
    if changed:
        raise app.UsageError(
            f"--output_dir={output_dir} holds the results of another leaderboard ({'; '.join(changed)}). "
            "Use a new --output_dir, or remove that folder's results first."
        )


def _files(data: config_lib.DataConfig, output_dir: str, seed: int) -> dict:
    """The configured files, or a simulation written into output_dir/simulated (train/valid/test 70/10/20)."""
    given = {"train": data.train_files, "valid": data.valid_files, "eval": data.eval_files, "schema": data.schema}
    if not any(given.values()):
        return simulate.write_simulation(
            os.path.join(output_dir, "simulated"), data.sim_rows, seed=seed, eval_fraction=0.2, valid_fraction=0.1
        )
    missing = [f"--{k}_files" if k != "schema" else "--schema" for k, v in given.items() if not v]
    if missing:
        raise app.UsageError(
            f"Give all of --train_files, --valid_files, --eval_files and --schema; missing {missing}. "
            "(`python -m tfcvr.data.convert ... --valid_fraction` draws a validation split.)"
        )
    present = {k: v for k, v in given.items() if v}  # all of them: none is missing
    schema = preflight.load_schema(present["schema"])
    for split in ("train", "valid", "eval"):
        preflight.check_files(f"--{split}_files", present[split], schema, data)
    return present


def main(argv: list[str]) -> None:
    del argv
    config = config_lib.config_from_flags(config_lib.BenchmarkConfig, FLAGS)
    output_dir = config.report.output_dir or DEFAULT_OUTPUT_DIR
    for entry in config.leaderboard.models:  # unknown names and bad arguments before any work
        method_params.parse_method_entry(entry)
    if not plots.available():  # said before the training, not after it
        logging.warning(
            'The leaderboard will not draw plots/: matplotlib is not installed (pip install "tfcvr[plots]").'
        )
    try:
        selection_direction(config.leaderboard.selection_metric)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    preflight.check_writable_dir("--output_dir", output_dir)
    _check_previous_results(output_dir, config)
    files = _files(config.data, output_dir, config.optimization.seed)
    board = Leaderboard(files, config, log=lambda line: print(line, flush=True))
    result = board.run()
    print()
    print(leaderboard_markdown(result, board.describe()))
    print(f"Wrote leaderboard.md, leaderboard.csv, runs.csv, leaderboard.json and plots/ in {output_dir}")


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
