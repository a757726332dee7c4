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
import tempfile

import keras
import tensorflow as tf
from absl import app, flags, logging

from tfcvr import cli, export, metrics
from tfcvr.data import pipeline as pipeline_lib
from tfcvr.data import schema as schema_lib
from tfcvr.data import simulate, statistics
from tfcvr.export import model_config, retention
from trainer import config as config_lib
from trainer import distribution, method_params, model_identity, preflight, warm_start
from trainer.loop import TrainingLoop

FLAGS = flags.FLAGS
RUN_CONFIG = "run_config.json"
SECTION_FLAGS = {  # the TaskConfig sections' settings that are flags of this command
    config_lib.DataConfig: ("train_files", "eval_files", "schema", "sim_rows", "invalid_conversion", "cache_input"),
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


def main(argv: list[str]) -> None:
    del argv
    run = config_lib.config_from_flags(config_lib.TaskConfig, FLAGS, FLAGS.config)
    model_class = method_params.model_class(run.method.model)
    model_params = method_params.parse_model_params(run.method.model_params, model_class)
    model_dir = run.output.model_dir or os.environ.get("AIP_MODEL_DIR")
    if not model_dir:
        model_dir = tempfile.mkdtemp(prefix="tfcvr-")
        atexit.register(_remove_if_empty, model_dir)  # a run stopped by a usage error leaves nothing behind
    config = distribution.tf_config()
    strategy_name = distribution.strategy_name(config, run.runtime.strategy)
    if run.data.cache_input and strategy_name == "parameter_server":
        # Its workers run an input function traced on the chief: the cached records would be shipped in it.
        raise app.UsageError(
            "--cache_input cannot be used with ParameterServerStrategy (each worker builds its "
            "input from a function traced on the chief); drop --cache_input."
        )
    if strategy_name == "parameter_server" and config["task"]["type"] in ("worker", "ps"):
        distribution.run_server(config)  # the chief coordinates; workers and ps serve until the job ends
        return
    strategy = distribution.make_strategy(strategy_name, config)
    logging.info(
        "Strategy %s (%s), %d replicas.", strategy_name, type(strategy).__name__, strategy.num_replicas_in_sync
    )
    replicas = strategy.num_replicas_in_sync
    if run.optimization.batch_size % replicas:
        raise app.UsageError(
            f"--batch_size={run.optimization.batch_size} must be a multiple of the {replicas} replicas."
        )
    checkpoint_dir = os.environ.get("AIP_CHECKPOINT_DIR") or os.path.join(model_dir, "checkpoints")
    schema = _schema(run.data)
    # Built once before any data is read, on the schema with one-bucket tables (the real vocabularies could take
    # gigabytes): every method argument is validated, and the configuration says what the checkpoints are.
    probe = _build(model_class, _one_bucket_tables(schema), run, model_params)
    if run.data.train_files is not None:
        preflight.check_files("--train_files", run.data.train_files, schema, run.data.invalid_conversion)
        preflight.check_files("--eval_files", run.data.eval_files, schema, run.data.invalid_conversion)
    _labelled_versions(run.output.serving_config)  # read again at export time (a label may move meanwhile)
    # Resolved before any data is read (a wrong path fails at start); applied only to a run without checkpoints.
    warm_start_source = _warm_start_source(run.warm_start, checkpoint_dir)
    if distribution.is_chief(strategy):
        preflight.check_writable_dir("--model_dir", model_dir)
    model_identity.check_or_record(
        checkpoint_dir,
        model_identity.model_identity(run.method.model, {**probe.get_config(), "schema": schema.to_dict()}),
        write=distribution.is_chief(strategy),
    )
    del probe
    keras.backend.clear_session()  # the probe's layers must not shift the auto-generated names of the model's
    if distribution.is_chief(strategy):
        # What this run read, with its resolved model_dir: `--config=<model_dir>/run_config.json` repeats it.
        resolved = dataclasses.replace(run, output=dataclasses.replace(run.output, model_dir=model_dir))
        config_lib.write_config(resolved, os.path.join(model_dir, RUN_CONFIG))
    train_files, eval_files = _data(run.data, run.optimization.seed)  # `schema` from _schema: the same file
    keras.utils.set_random_seed(run.optimization.seed)

    # Under ParameterServerStrategy the coordinator hands steps to whichever worker is free, so data is not
    # sharded statically: each worker reads every file in its own random order (seed None).
    train_pipeline = pipeline_lib.TFRecordPipeline(
        train_files,
        schema,
        run.optimization.batch_size // replicas,
        shuffle=True,
        seed=None if strategy_name == "parameter_server" else run.optimization.seed,
        invalid_conversion=run.data.invalid_conversion,
        cache=run.data.cache_input,
    )
    # Unshuffled, so every worker of a distributed job derives the same statistics.
    statistics_pipeline = pipeline_lib.TFRecordPipeline(
        train_files, schema, run.optimization.batch_size, invalid_conversion=run.data.invalid_conversion
    )
    with statistics_pipeline.named_errors():
        data_statistics = statistics.training_statistics(statistics_pipeline.dataset(), schema)
    logging.info(
        "Task heads start at the training data's base rates: %s.",
        ", ".join(f"{k} {v:.4g}" for k, v in data_statistics["label_rates"].items()),
    )

    steps_per_epoch = run.runtime.steps_per_epoch
    if strategy_name == "multi_worker_mirrored":
        readers = strategy.num_replicas_in_sync
        logging.info("Training data split across %d workers by %s.", readers, train_pipeline.sharding(readers))
    records = None
    if steps_per_epoch is None and (strategy_name != "default" or run.optimization.needs_steps_per_epoch):
        # The learning-rate schedule's period is one epoch; workers must take the same number of steps.
        with train_pipeline.named_errors():
            records = pipeline_lib.count_records(train_pipeline.files)
        if strategy_name != "default":  # their shards need not hold the same records: a common count
            steps_per_epoch = max(1, records // run.optimization.batch_size)
    epoch_steps = steps_per_epoch or (None if records is None else max(1, -(-records // run.optimization.batch_size)))
    if records is not None:
        logging.info(
            "%d training records: %d steps per epoch of %d.", records, epoch_steps, run.optimization.batch_size
        )
    with strategy.scope():
        model = _build(model_class, schema, run, model_params, data_statistics)
        model.compile(optimizer=run.optimization.make_optimizer(epoch_steps))

    def dataset_fn(input_context, epoch):
        return train_pipeline.dataset(
            epochs=None if steps_per_epoch else 1,
            epoch_index=epoch,
            num_shards=1 if strategy_name == "parameter_server" else input_context.num_input_pipelines,
            shard_index=0 if strategy_name == "parameter_server" else input_context.input_pipeline_id,
        )

    log_dir = os.environ.get("AIP_TENSORBOARD_LOG_DIR") or os.path.join(model_dir, "logs")
    eval_pipeline = pipeline_lib.TFRecordPipeline(
        eval_files,
        schema,
        run.optimization.batch_size,
        ground_truth=pipeline_lib.has_ground_truth(pipeline_lib.resolve_files(eval_files)),
        invalid_conversion=run.data.invalid_conversion,
        group=schema.group_key is not None,
    )
    # TensorBoard runs as Keras lays them out: logs/train (the loop's scalars) and logs/eval (per epoch).
    eval_writer = (
        tf.summary.create_file_writer(os.path.join(log_dir, "eval")) if distribution.is_chief(strategy) else None
    )
    served_stage = model.training_stages(run.optimization.epochs)[-1][0]
    evaluation = {}

    def evaluate(stage, epochs_done, step):
        if stage != served_stage:  # an earlier stage (UKD's teacher) does not train the served outputs
            return
        with eval_pipeline.named_errors():
            evaluation["results"] = metrics.evaluate(model, eval_pipeline.dataset())
        if eval_writer is not None:
            with eval_writer.as_default():
                for name, value in evaluation["results"].items():
                    if isinstance(value, float) and math.isfinite(value):
                        tf.summary.scalar(name, value, step=step)
            eval_writer.flush()
        logging.info(
            "Evaluated after epoch %d (step %d): cvr_auc=%.4f",
            epochs_done,
            step,
            evaluation["results"].get("cvr_auc", float("nan")),
        )

    loop = TrainingLoop(
        model,
        strategy,
        checkpoint_dir=checkpoint_dir,
        summary_dir=os.path.join(log_dir, "train"),
        log_every=run.runtime.log_every,
        checkpoint_every=run.runtime.checkpoint_every,
        steps_per_execution=run.runtime.steps_per_execution,
    )
    warm_started = None
    if warm_start_source is not None:
        try:
            warm_started = warm_start.warm_start(
                model,
                warm_start_source,
                partial=run.warm_start.warm_start_partial,
                optimizer_state=run.warm_start.warm_start_optimizer,
                method=run.method.model,
            )
            warm_start.assert_replicas_agree(model, strategy)
        except warm_start.WarmStartError as e:
            raise app.UsageError(str(e)) from None
        if distribution.is_chief(strategy):
            warm_start.record(checkpoint_dir, run.warm_start.warm_start_from, warm_started)
    logging.info(
        "Training %s (%s) on %s; model_dir %s", run.method.model, model.get_config()["backbone"], train_files, model_dir
    )
    with train_pipeline.named_errors():
        training = loop.train(
            dataset_fn,
            run.optimization.epochs,
            run.optimization.batch_size,
            steps_per_epoch,
            expected_steps_per_epoch=None
            if steps_per_epoch
            else epoch_steps or _expected_steps(train_pipeline.files, run.optimization.batch_size),
            on_epoch_end=evaluate,
        )
    if train_pipeline.invalid_conversions_dropped:
        logging.warning(
            "Dropped %d training records with conversion=1 and click=0.", train_pipeline.invalid_conversions_dropped
        )

    if "results" not in evaluation:  # a finished run restarted: no epoch left to train, evaluate now
        evaluate(served_stage, run.optimization.epochs, int(loop.global_step.numpy()))
    results = evaluation["results"]
    report = {
        "model": run.method.model,
        "backbone": model.get_config()["backbone"],
        "metrics": results,
        "training": {**training, "dropped_invalid_conversions": train_pipeline.invalid_conversions_dropped},
        "eval_dropped_invalid_conversions": eval_pipeline.invalid_conversions_dropped,
    }
    if warm_started is not None:
        report["warm_start"] = warm_started
    if distribution.is_chief(strategy):
        with tf.io.gfile.GFile(os.path.join(model_dir, "metrics.json"), "w") as f:
            f.write(json.dumps(report, indent=2, allow_nan=True) + "\n")
        if os.environ.get("CLOUD_ML_TRIAL_ID"):
            _report_to_tuner(run.output.hypertune_metric, results, int(loop.global_step.numpy()))
    if run.output.export:
        shared_export_base = run.output.export_base or os.path.join(model_dir, "export")
        export_base = distribution.writable_dir(shared_export_base, strategy)
        report["export"] = export.export_for_serving(model, schema, export_base)
        if run.output.keep_versions is not None:
            _retire_versions(export_base, report["export"], run.output)
        distribution.cleanup_worker_dir(export_base, shared_export_base)
    print(metrics.format_table(results, title=f"{run.method.model} ({report['backbone']}) on {eval_files}"))
    print(
        f"\n{training['steps']} steps, {training['examples_per_second']:.0f} examples/s; "
        f"model_dir: {model_dir}" + (f"; export: {report['export']}" if run.output.export else "")
    )


# Counting the training records for progress lines' step/total and ETA costs about a second per 256 MiB.
COUNT_RECORDS_UP_TO_BYTES = 256 * 2**20


def _expected_steps(files: list, batch_size: int) -> int | None:
    """Steps of one pass over `files` (local and small enough to count quickly), else None (no total shown)."""
    try:
        if sum(tf.io.gfile.stat(f).length for f in files) > COUNT_RECORDS_UP_TO_BYTES:
            return None
        records = pipeline_lib.count_records(files)
    except tf.errors.OpError:
        return None  # a damaged file: training reports it, naming the file and record
    return -(-records // batch_size)


def _remove_if_empty(path: str) -> None:
    if os.path.isdir(path) and not os.listdir(path):
        os.rmdir(path)


def _report_to_tuner(metric, results, global_step):
    """Reports `metric` to Vertex AI's tuner (the file cloudml-hypertune writes and Vertex reads)."""
    import hypertune  # cloudml-hypertune; only needed under a tuning job

    if metric not in results:
        raise app.UsageError(
            f"--hypertune_metric={metric!r} is not an evaluation metric; "
            f"available: {sorted(k for k, v in results.items() if isinstance(v, float))}"
        )
    hypertune.HyperTune().report_hyperparameter_tuning_metric(
        hyperparameter_metric_tag=metric, metric_value=results[metric], global_step=global_step
    )
    logging.info("Reported %s=%.5f to the hyperparameter tuner.", metric, results[metric])


def _build(model_class, schema, run: config_lib.TaskConfig, model_params: dict, data_statistics=None):
    """The configured method on `schema`; an invalid method argument is a UsageError naming --model_params.

    `data_statistics`: the training data's `numeric_statistics` and `label_rates`
    (None for the probe that checks the arguments before any data is read).
    """
    try:
        return model_class(schema=schema, **(data_statistics or {}), **run.architecture.model_kwargs(), **model_params)
    except (ValueError, TypeError) as e:
        if data_statistics is not None:
            raise
        raise app.UsageError(
            f"--model={run.method.model} --model_params={','.join(run.method.model_params)}: {e}"
        ) from None


def _retire_versions(export_base: str, exported: str, output: config_lib.OutputConfig) -> None:
    """--keep_versions after the export: never the new version nor one a serving label names (read now)."""
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


def _one_bucket_tables(schema: schema_lib.Schema) -> schema_lib.Schema:
    """`schema` with every categorical feature hashed into one bucket: the same graph, tiny tables."""
    config = schema.to_dict()
    config["features"] = [{**f, "num_buckets": 1} if "num_buckets" in f else f for f in config["features"]]
    return schema_lib.Schema.from_dict(config)


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
