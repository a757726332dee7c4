r"""Train, evaluate and export one CVR method.

    python -m trainer.task --model=NAME [--backbone=shared_bottom|mmoe]
        [--train_files=GLOB --eval_files=GLOB --schema=schema.json]
        [--model_dir=DIR] [--epochs=N] [--batch_size=B] [--learning_rate=LR]

With no data flags it simulates an impression log (tfcvr.data.simulate) and runs
end to end. It prints a metrics table, writes `<model_dir>/metrics.json` and
exports to `<model_dir>/export/<version>/`. `--model_dir` defaults to Vertex
AI's AIP_MODEL_DIR, TensorBoard logs go to AIP_TENSORBOARD_LOG_DIR when set, and
every path may be gs://. No method logic lives here.
"""

import atexit
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile

import keras
import tensorflow as tf
from absl import app, flags, logging

from tfcvr import atomic, cli, export, metrics, models, optional
from tfcvr.data import pipeline as pipeline_lib
from tfcvr.data import schema as schema_lib
from tfcvr.data import simulate, statistics
from tfcvr.export import model_config, retention
from tfcvr.models import intercepts
from trainer import config as config_lib
from trainer import distribution, lease, method_params, model_identity, preemption, preflight, threads, warm_start
from trainer.loop import TrainingLoop

FLAGS = flags.FLAGS
RUN_CONFIG = "run_config.json"
TUNING_FEATURE = "Reporting to a Vertex AI hyperparameter tuning job (CLOUD_ML_TRIAL_ID is set)"
SECTION_FLAGS = {  # the TaskConfig sections' settings that are flags of this command
    config_lib.DataConfig: (
        "train_files",
        "eval_files",
        "schema",
        "sim_rows",
        "invalid_conversion",
        "cache_input",
        "skip_corrupt_records",
    ),
    config_lib.ArchitectureConfig: None,
    config_lib.MethodConfig: None,
    config_lib.OptimizationConfig: None,
    config_lib.RuntimeConfig: None,
    config_lib.OutputConfig: None,
    config_lib.WarmStartConfig: None,
}
for _section, _only in SECTION_FLAGS.items():
    config_lib.define_flags(_section, only=_only)
flags.DEFINE_string(
    "config",
    None,
    "A run_config.json written by an earlier run: repeat it; flags given on the "
    "command line replace its settings (e.g. --model_dir).",
)


@dataclasses.dataclass(frozen=True)
class Method:
    """The configured method: its class and its checked --model_params."""

    model_class: type[models.CVRModel]
    params: dict


@dataclasses.dataclass(frozen=True)
class Setup:
    """What validation resolved before any data is read."""

    schema: schema_lib.Schema
    model_dir: str
    checkpoint_dir: str
    warm_start_source: warm_start.WarmStartSource | None


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The run's pipelines and what was read from the training data."""

    train_files: object
    eval_files: object
    train: pipeline_lib.TFRecordPipeline
    eval: pipeline_lib.TFRecordPipeline
    statistics: dict  # `numeric_statistics` and `label_rates` (tfcvr.data.training_statistics)
    unshuffled_train: pipeline_lib.TFRecordPipeline  # every training record once, for statistics and the refit
    steps_per_epoch: int | None  # a fixed count (--steps_per_epoch, or common to distributed workers), or None
    epoch_steps: int | None  # the steps of one epoch when known: a learning-rate schedule's period


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What training and the last evaluation produced."""

    training: dict
    results: dict
    warm_started: dict | None
    global_step: int
    intercepts: dict | None  # the served intercepts' refit (tfcvr.models.refit_intercepts), None when off


def main(argv: list[str]) -> None:
    """Resolve the configuration, validate and identify the run, read the data, build, train and evaluate, publish."""
    del argv
    run = config_lib.config_from_flags(config_lib.TaskConfig, FLAGS, FLAGS.config)
    intra_op_threads = threads.configure(run.runtime.intra_op_threads)  # before the strategy or any op starts TF
    if os.environ.get("CLOUD_ML_TRIAL_ID"):
        optional.require("hypertune", TUNING_FEATURE)  # reported after training: missing, fail before it
    model_class = method_params.model_class(run.method.model)
    method = Method(model_class, method_params.parse_model_params(run.method.model_params, model_class))
    placement = _place(run)
    if placement is None:
        return  # a parameter-server job's worker or ps: it served the chief until the job ended
    setup = _validate_and_identify(run, method, placement)
    # Logged once everything is checked: a bad command line prints its one-line error and nothing before it.
    logging.info(
        "Strategy %s (%s), %d replicas; %s thread(s) per TensorFlow op (--intra_op_threads=%d).",
        placement.kind.value,
        type(placement.strategy).__name__,
        placement.replicas,
        intra_op_threads or "TensorFlow's default",
        run.runtime.intra_op_threads,
    )
    data = _read_data(run, setup.schema, placement)
    with placement.strategy.scope():
        model = config_lib.build_model(
            method.model_class,
            setup.schema,
            run.architecture,
            run.optimization,
            method.params,
            data.statistics,
            data.epoch_steps,
        )
    try:
        outcome = _train_and_evaluate(run, model, data, setup, placement)
    except preemption.Preempted as e:
        # Non-zero, so a scheduler that restarts failed tasks (a Kubernetes Job, Vertex AI) starts it again; the
        # restarted job resumes from the checkpoint just written.
        logging.warning("%s Exiting with status %d for a restart.", e, preemption.PREEMPTED_EXIT_STATUS)
        sys.exit(preemption.PREEMPTED_EXIT_STATUS)
    _publish(run, model, setup, data, outcome, placement)


def _place(run: config_lib.TaskConfig) -> distribution.Placement | None:
    """The distribution strategy, decided once; None after serving as a parameter-server job's worker or ps."""
    config = distribution.tf_config()
    kind = distribution.strategy_name(config, run.runtime.strategy)
    if run.data.cache_input and kind is distribution.StrategyKind.PARAMETER_SERVER:
        # Its workers run an input function traced on the chief: the cached records would be shipped in it.
        raise app.UsageError(
            "--cache_input cannot be used with ParameterServerStrategy (each worker builds its "
            "input from a function traced on the chief); drop --cache_input."
        )
    if distribution.is_server_task(kind, config):
        distribution.run_server(config)  # the chief coordinates; workers and ps serve until the job ends
        return None
    placement = distribution.Placement(kind, distribution.make_strategy(kind, config))
    if run.optimization.batch_size % placement.replicas:
        raise app.UsageError(
            f"--batch_size={run.optimization.batch_size} must be a multiple of the {placement.replicas} replicas."
        )
    return placement


def _resolve_model_dir(output: config_lib.OutputConfig) -> str:
    """--model_dir, Vertex AI's AIP_MODEL_DIR, or a temporary folder removed at exit if the run wrote nothing."""
    model_dir = output.model_dir or os.environ.get("AIP_MODEL_DIR")
    if not model_dir:
        model_dir = tempfile.mkdtemp(prefix="tfcvr-")
        atexit.register(_remove_if_empty, model_dir)  # a run stopped by a usage error leaves nothing behind
    return model_dir


def _validate_and_identify(run: config_lib.TaskConfig, method: Method, placement) -> Setup:
    """Every check that needs no training data, then the run's identity and configuration recorded.

    The method's configuration is computed without building it
    (`CVRModel.configuration`): every method and architecture argument is
    validated, and the configuration says what the checkpoints are.
    """
    model_dir = _resolve_model_dir(run.output)
    checkpoint_dir = os.environ.get("AIP_CHECKPOINT_DIR") or os.path.join(model_dir, "checkpoints")
    schema = _schema(run.data)
    model_config = _model_config(method, schema, run)
    if run.data.train_files is not None:
        preflight.check_files("--train_files", run.data.train_files, schema, run.data)
        eval_files = preflight.required_flag("--eval_files", run.data.eval_files)  # _schema has checked it
        preflight.check_files("--eval_files", eval_files, schema, run.data)
    _labelled_versions(run.output.serving_config)  # read again at export time (a label may move meanwhile)
    # Resolved before any data is read (a wrong path fails at start); applied only to a run without checkpoints.
    warm_start_source = _warm_start_source(run.warm_start, checkpoint_dir)
    if placement.is_chief:
        preflight.check_writable_dir("--model_dir", model_dir)
        # One writer per folder, held until the process exits (trainer/lease.py).
        lease.ModelDirLease(model_dir).acquire()
    model_identity.check_or_record(
        checkpoint_dir,
        model_identity.model_identity(run.method.model, model_config),
        write=placement.is_chief,
    )
    if placement.is_chief:
        # What this run read, with its resolved model_dir: `--config=<model_dir>/run_config.json` repeats it.
        resolved = dataclasses.replace(run, output=dataclasses.replace(run.output, model_dir=model_dir))
        config_lib.write_config(resolved, os.path.join(model_dir, RUN_CONFIG))
    return Setup(schema, model_dir, checkpoint_dir, warm_start_source)


def _read_data(run: config_lib.TaskConfig, schema: schema_lib.Schema, placement) -> TrainingData:
    """The pipelines, the training data's statistics and, when needed, its step count (one read each)."""
    train_files, eval_files = _data(run.data, run.optimization.seed)  # `schema` from _schema: the same file
    keras.utils.set_random_seed(run.optimization.seed)
    batch_size = run.optimization.batch_size
    train = pipeline_lib.TFRecordPipeline(
        train_files,
        schema,
        batch_size // placement.replicas,
        shuffle=True,
        seed=run.optimization.seed if placement.static_input_shards else None,
        invalid_conversion=run.data.invalid_conversion,
        cache=run.data.cache_input,
        skip_corrupt_records=run.data.skip_corrupt_records,
    )
    # Unshuffled, so every worker of a distributed job derives the same statistics.
    statistics_pipeline = pipeline_lib.TFRecordPipeline(
        train_files,
        schema,
        batch_size,
        invalid_conversion=run.data.invalid_conversion,
        skip_corrupt_records=run.data.skip_corrupt_records,
    )
    with statistics_pipeline.named_errors():
        data_statistics = statistics.training_statistics(statistics_pipeline.dataset(), schema)
    logging.info(
        "Task heads start at the training data's base rates: %s.",
        ", ".join(f"{k} {v:.4g}" for k, v in data_statistics["label_rates"].items()),
    )
    if placement.splits_input_across_workers:
        logging.info(
            "Training data split across %d workers by %s.", placement.replicas, train.sharding(placement.replicas)
        )
    steps_per_epoch, epoch_steps = _epoch_steps(run, train, placement)
    eval_pipeline = pipeline_lib.TFRecordPipeline(
        eval_files,
        schema,
        batch_size,
        ground_truth=pipeline_lib.has_ground_truth(pipeline_lib.resolve_files(eval_files)),
        invalid_conversion=run.data.invalid_conversion,
        group=schema.group_key is not None,
        skip_corrupt_records=run.data.skip_corrupt_records,
    )
    return TrainingData(
        train_files,
        eval_files,
        train,
        eval_pipeline,
        data_statistics,
        statistics_pipeline,
        steps_per_epoch,
        epoch_steps,
    )


def _epoch_steps(run: config_lib.TaskConfig, train: pipeline_lib.TFRecordPipeline, placement) -> tuple:
    """(fixed steps per epoch or None, steps of one epoch when known), counting the records only when needed.

    The learning-rate schedule's period is one epoch, and distributed workers
    must take the same number of steps: their shards need not hold the same
    records, so they share a count of full batches.
    """
    batch_size = run.optimization.batch_size
    steps_per_epoch = run.runtime.steps_per_epoch
    if steps_per_epoch is not None or not (placement.distributed or run.optimization.needs_steps_per_epoch):
        return steps_per_epoch, steps_per_epoch
    with train.named_errors():
        records = train.record_count()
    if placement.distributed:
        steps_per_epoch = max(1, records // batch_size)
    epoch_steps = steps_per_epoch or max(1, -(-records // batch_size))
    logging.info("%d training records: %d steps per epoch of %d.", records, epoch_steps, batch_size)
    return steps_per_epoch, epoch_steps


class Evaluator:
    """Evaluates the served outputs after each epoch of the served stage; `results` holds the latest.

    After the last epoch (`total_epochs` across stages) it first refits the served intercepts to `refit_target`
    (`tfcvr.models.refit_intercepts`; "none": no refit) on `refit_pipeline`, so the final metrics are those of
    what is exported.
    """

    def __init__(
        self,
        model: models.CVRModel,
        eval_pipeline: pipeline_lib.TFRecordPipeline,
        served_stage: str,
        writer,
        total_epochs: int,
        refit_pipeline: pipeline_lib.TFRecordPipeline,
        refit_target: str,
    ):
        self.model, self.eval_pipeline, self.served_stage, self.writer = model, eval_pipeline, served_stage, writer
        self.total_epochs, self.refit_pipeline, self.refit_target = total_epochs, refit_pipeline, refit_target
        self.results: dict | None = None
        self.intercepts: dict | None = None

    def __call__(self, stage: str, epochs_done: int, step: int) -> None:
        if stage != self.served_stage:  # an earlier stage (UKD's teacher) does not train the served outputs
            return
        if epochs_done == self.total_epochs and self.refit_target != "none":
            with self.refit_pipeline.named_errors():
                self.intercepts = intercepts.refit_or_skip(self.model, self.refit_pipeline.dataset(), self.refit_target)
            if "skipped" in self.intercepts:
                logging.warning(
                    "Served intercepts NOT refitted, the heads serve as trained: %s", self.intercepts["skipped"]
                )
            else:
                logging.info(
                    "Served %s intercepts refitted on %d training impressions (%d clicks, %d conversions): "
                    "ctr logit %+.4f, cvr logit %+.4f.",
                    self.refit_target,
                    *(self.intercepts[k] for k in ("examples", "clicks", "conversions", "ctr_offset", "cvr_offset")),
                )
        with self.eval_pipeline.named_errors():
            self.results = metrics.evaluate(self.model, self.eval_pipeline.dataset())
        if self.writer is not None:
            with self.writer.as_default():
                for name, value in self.results.items():
                    if isinstance(value, float) and math.isfinite(value):
                        tf.summary.scalar(name, value, step=step)
            self.writer.flush()
        logging.info(
            "Evaluated after epoch %d (step %d): cvr_auc=%.4f",
            epochs_done,
            step,
            self.results.get("cvr_auc", float("nan")),
        )


def _train_and_evaluate(run, model, data: TrainingData, setup: Setup, placement) -> Outcome:
    """Warm start (a run without checkpoints of its own), train with an evaluation after every epoch."""
    log_dir = os.environ.get("AIP_TENSORBOARD_LOG_DIR") or os.path.join(setup.model_dir, "logs")
    # TensorBoard runs as Keras lays them out: logs/train (the loop's scalars) and logs/eval (per epoch).
    writer = tf.summary.create_file_writer(os.path.join(log_dir, "eval")) if placement.is_chief else None
    stages = model.training_stages(run.optimization.epochs)
    served_stage, total_epochs = stages[-1][0], sum(epochs for _, epochs in stages)
    evaluator = Evaluator(
        model, data.eval, served_stage, writer, total_epochs, data.unshuffled_train, run.optimization.refit_intercepts
    )
    loop = TrainingLoop(
        model,
        placement.strategy,
        checkpoint_dir=setup.checkpoint_dir,
        summary_dir=os.path.join(log_dir, "train"),
        log_every=run.runtime.log_every,
        checkpoint_every=run.runtime.checkpoint_every,
        steps_per_execution=run.runtime.steps_per_execution,
        handle_termination_signal=True,
    )
    warm_started = _warm_start(run, model, setup, placement)
    logging.info(
        "Training %s (%s) on %s; model_dir %s",
        run.method.model,
        model.get_config()["backbone"],
        data.train_files,
        setup.model_dir,
    )
    static_shards = placement.static_input_shards

    def dataset_fn(input_context, epoch):
        return data.train.dataset(
            epochs=None if data.steps_per_epoch else 1,
            epoch_index=epoch,
            num_shards=input_context.num_input_pipelines if static_shards else 1,
            shard_index=input_context.input_pipeline_id if static_shards else 0,
        )

    with data.train.named_errors():
        training = loop.train(
            dataset_fn,
            run.optimization.epochs,
            run.optimization.batch_size,
            data.steps_per_epoch,
            expected_steps_per_epoch=None
            if data.steps_per_epoch
            else data.epoch_steps or _expected_steps(data.train, run.optimization.batch_size),
            on_epoch_end=evaluator,
        )
    if data.train.invalid_conversions_dropped:
        logging.warning(
            "Dropped %d training records with conversion=1 and click=0.", data.train.invalid_conversions_dropped
        )
    global_step = int(loop.global_step.numpy())
    if evaluator.results is None:  # a finished run restarted: no epoch left to train, refit and evaluate now
        evaluator(served_stage, total_epochs, global_step)
    assert evaluator.results is not None  # the evaluator has just run
    return Outcome(training, evaluator.results, warm_started, global_step, evaluator.intercepts)


def _warm_start(run, model, setup: Setup, placement) -> dict | None:
    """Seeds `model` from --warm_start_from (resolved in `_validate_and_identify`); the report, or None."""
    if setup.warm_start_source is None:
        return None
    try:
        warm_started = warm_start.warm_start(
            model,
            setup.warm_start_source,
            partial=run.warm_start.warm_start_partial,
            optimizer_state=run.warm_start.warm_start_optimizer,
            method=run.method.model,
        )
        warm_start.assert_replicas_agree(model, placement.strategy)
    except warm_start.WarmStartError as e:
        raise app.UsageError(str(e)) from None
    if placement.is_chief:
        warm_start.record(setup.checkpoint_dir, run.warm_start.warm_start_from, warm_started)
    return warm_started


def _publish(run, model, setup: Setup, data: TrainingData, outcome: Outcome, placement) -> None:
    """metrics.json, the tuner's metric, the export and its retention (the chief's), and the printed table."""
    backbone = model.get_config()["backbone"]
    report = {
        "model": run.method.model,
        "backbone": backbone,
        "metrics": outcome.results,
        "training": {
            **outcome.training,
            "dropped_invalid_conversions": data.train.invalid_conversions_dropped,
            "skipped_corrupt_records": data.train.corrupt_records_skipped,
        },
        "eval_dropped_invalid_conversions": data.eval.invalid_conversions_dropped,
        "eval_skipped_corrupt_records": data.eval.corrupt_records_skipped,
    }
    if outcome.warm_started is not None:
        report["warm_start"] = outcome.warm_started
    if outcome.intercepts is not None:
        report["refit_intercepts"] = outcome.intercepts
    if run.output.export:
        shared_export_base = run.output.export_base or os.path.join(setup.model_dir, "export")
        export_base = distribution.writable_dir(shared_export_base, placement.strategy)
        report["export"] = export.export_for_serving(model, setup.schema, export_base)
        _retire_versions(export_base, report["export"], run.output)
        distribution.cleanup_worker_dir(export_base, shared_export_base)
    if placement.is_chief:
        # Written last, whole or not at all: a metrics.json says the run finished (and names its export).
        atomic.write_file(
            os.path.join(setup.model_dir, "metrics.json"), json.dumps(report, indent=2, allow_nan=True) + "\n"
        )
        if os.environ.get("CLOUD_ML_TRIAL_ID"):
            _report_to_tuner(run.output.hypertune_metric, outcome.results, outcome.global_step)
    print(metrics.format_table(outcome.results, title=f"{run.method.model} ({backbone}) on {data.eval_files}"))
    training = outcome.training
    print(
        f"\n{training['steps']} steps, {training['examples_per_second']:.0f} examples/s; "
        f"model_dir: {setup.model_dir}" + (f"; export: {report['export']}" if run.output.export else "")
    )


# Counting the training records for progress lines' step/total and ETA costs about a second per 256 MiB.
COUNT_RECORDS_UP_TO_BYTES = 256 * 2**20


def _expected_steps(train: pipeline_lib.TFRecordPipeline, batch_size: int) -> int | None:
    """Steps of one pass over the training files (small enough to count quickly), else None (no total shown).

    A damaged file is a DataError here, before training, unless --skip_corrupt_records.
    """
    try:
        if sum(tf.io.gfile.stat(f).length for f in train.files) > COUNT_RECORDS_UP_TO_BYTES:
            return None
    except tf.errors.OpError:
        return None  # a file that cannot be stat'ed now: training reports it
    records = train.record_count()
    return -(-records // batch_size)


def _remove_if_empty(path: str) -> None:
    """Removes a folder the run wrote nothing into (its own lease files aside)."""
    own = (lease.LEASE_FILE, lease.LOCK_FILE, f".{lease.LEASE_FILE}.tmp-")  # the last: the lease's temporary file
    if os.path.isdir(path) and all(name.startswith(own) for name in os.listdir(path)):
        shutil.rmtree(path)


def _report_to_tuner(metric, results, global_step):
    """Reports `metric` to Vertex AI's tuner (the file cloudml-hypertune writes and Vertex reads)."""
    hypertune = optional.require("hypertune", TUNING_FEATURE)  # cloudml-hypertune; only under a tuning job

    if metric not in results:
        raise app.UsageError(
            f"--hypertune_metric={metric!r} is not an evaluation metric; "
            f"available: {sorted(k for k, v in results.items() if isinstance(v, float))}"
        )
    hypertune.HyperTune().report_hyperparameter_tuning_metric(
        hyperparameter_metric_tag=metric, metric_value=results[metric], global_step=global_step
    )
    logging.info("Reported %s=%.5f to the hyperparameter tuner.", metric, results[metric])


def _model_config(method: Method, schema: schema_lib.Schema, run: config_lib.TaskConfig) -> dict:
    """The configured method's config on `schema`, computed before any data is read (the model is not built);
    an invalid argument is a UsageError."""
    try:
        return method.model_class.configuration(schema, **{**run.architecture.model_kwargs(), **method.params})
    except (ValueError, TypeError) as e:
        raise app.UsageError(
            f"--model={run.method.model} --model_params={','.join(run.method.model_params)}: {e}"
        ) from None


def _retire_versions(export_base: str, exported: str, output: config_lib.OutputConfig) -> None:
    """--keep_versions after the export (none without it): never the new version nor one a serving label names."""
    if output.keep_versions is None:
        return
    try:
        labelled = _labelled_versions(output.serving_config)
    except app.UsageError as e:  # the new version is out; keeping old ones is the safe side
        logging.error("Not retiring export versions: %s", e)
        return
    retention.retain_versions(export_base, output.keep_versions, protect={int(os.path.basename(exported)), *labelled})


def _labelled_versions(serving_config: str | None) -> set:
    """The versions the labels of TF Serving's model config name (kept by retention); none without one."""
    if not serving_config:
        return set()
    try:
        with tf.io.gfile.GFile(serving_config) as f:
            return model_config.labelled_versions(f.read())
    except (tf.errors.NotFoundError, ValueError) as e:
        raise app.UsageError(f"--serving_config={serving_config}: {e}") from None


def _warm_start_source(config: config_lib.WarmStartConfig, checkpoint_dir: str):
    """The source to seed the weights from, or None (no --warm_start_from, or the run resumes its own checkpoints)."""
    if not config.warm_start_from:
        if config.warm_start_partial or config.warm_start_optimizer:
            raise app.UsageError("--warm_start_partial and --warm_start_optimizer need --warm_start_from.")
        return None
    try:
        return warm_start.source_for_run(config.warm_start_from, checkpoint_dir)
    except warm_start.WarmStartError as e:
        raise app.UsageError(str(e)) from None


def _schema(data: config_lib.DataConfig):
    """The schema of the configured data (the simulator's when no data flags are given), before any data is read."""
    if data.train_files is None:
        if data.eval_files or data.schema:
            raise app.UsageError("--eval_files and --schema need --train_files (no data flags: simulate).")
        return simulate.simulation_schema(simulate.SimulationConfig())
    if not data.schema:
        raise app.UsageError("--train_files needs --schema (the schema.json describing the TFRecords).")
    if not data.eval_files:
        raise app.UsageError("--train_files needs --eval_files to evaluate on.")
    return preflight.load_schema(data.schema)


def _data(data: config_lib.DataConfig, seed: int):
    """(train glob, eval glob): the configured data (checked by `_schema`), or a fresh simulation."""
    if data.train_files is None:
        sim_dir = tempfile.mkdtemp(prefix="tfcvr-simulated-")
        # Removed at exit: run_config.json's seed and --sim_rows simulate the same log again.
        atexit.register(shutil.rmtree, sim_dir, ignore_errors=True)
        paths = simulate.write_simulation(sim_dir, data.sim_rows, seed=seed)
        logging.info("Simulated %d impressions into %s (removed at exit).", data.sim_rows, sim_dir)
        return paths["train"], paths["eval"]
    return data.train_files, data.eval_files


if __name__ == "__main__":
    cli.run(main, also=(FloatingPointError,))  # a diverged run names its terms and what to change
