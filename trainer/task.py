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

import json
import os
import tempfile

import keras
import tensorflow as tf
from absl import app, flags, logging

from tfcvr import export, metrics, optimizers
from tfcvr.data import pipeline as pipeline_lib
from tfcvr.data import schema as schema_lib
from tfcvr.data import simulate, statistics
from trainer import distribution, method_params
from trainer.loop import STEPS_PER_EXECUTION, TrainingLoop

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "esmm", "Registered method name (an unknown name lists them).")
flags.DEFINE_enum("backbone", None, ["shared_bottom", "mmoe"],
                  "Multi-task backbone; default: the method's own (shared_bottom, or mmoe for mmoe_ddpo).")
flags.DEFINE_string("train_files", None, "Glob(s) of training TFRecords; none: simulate.")
flags.DEFINE_string("eval_files", None, "Glob(s) of evaluation TFRecords.")
flags.DEFINE_string("schema", None, "schema.json of the TFRecords.")
flags.DEFINE_string("model_dir", None, "Output folder; default AIP_MODEL_DIR, else a new temporary folder.")
flags.DEFINE_integer("epochs", 1, "Passes over the training data.")
flags.DEFINE_integer("batch_size", 1024, "Global batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_enum("optimizer", "adam", sorted(optimizers.OPTIMIZERS),
                  "adam, or lazy_adam: Adam that updates only the embedding rows a batch looks up.")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (repeats the data); default: one pass.")
flags.DEFINE_bool("cache_input", False,
                  "Parse the training records once and keep them in memory (8 bytes per id and label, 4 per "
                  "numeric value per record: ~200 bytes for Ali-CCP); every epoch is then a new global shuffle of "
                  "them. For several epochs over data that fits in RAM. Not with ParameterServerStrategy.")
flags.DEFINE_integer("steps_per_execution", STEPS_PER_EXECUTION,
                     "Training steps per tf.function call (same results; fewer calls are faster).",
                     lower_bound=1)
flags.DEFINE_integer("embedding_dim", 16, "Embedding width per categorical feature.")
flags.DEFINE_list("hidden_units", ["256", "128"], "Shared-bottom MLP (or MMoE expert) widths.")
flags.DEFINE_list("tower_units", ["64", "32"], "Task tower widths.")
flags.DEFINE_integer("num_experts", 4, "MMoE experts.")
flags.DEFINE_float("dropout", 0.0, "Dropout rate in backbone and towers.")
flags.DEFINE_list("model_params", [], "Method arguments as name=value, e.g. ctr_loss_weight=0.5.")
flags.DEFINE_integer("seed", 0, "Seed of shuffling, initialisation and the simulator.")
flags.DEFINE_integer("sim_rows", 200_000, "Impressions to simulate when no data flags are given.")
flags.DEFINE_enum("invalid_conversion", "error", ["error", "drop"],
                  "Records with conversion=1 and click=0: fail, or drop and count them.")
flags.DEFINE_integer("log_every", 100, "Steps between progress lines and summaries.")
flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.")
flags.DEFINE_bool("export", True, "Export a SavedModel for TF Serving.")
flags.DEFINE_enum("strategy", "auto", list(distribution.STRATEGIES),
                  "Distribution strategy; auto: from TF_CONFIG (none -> default, workers -> "
                  "multi_worker_mirrored, a ps job -> parameter_server).")
flags.DEFINE_string("hypertune_metric", "cvr_auc",
                    "Evaluation metric reported to Vertex AI's hyperparameter tuner when CLOUD_ML_TRIAL_ID is set.")
flags.DEFINE_integer("keep_versions", None,
                     "After exporting, keep only the newest N complete versions under <model_dir>/export "
                     "(never the one just written). Default: keep all.")
flags.register_validator("keep_versions", lambda n: n is None or n >= 1,
                         message="--keep_versions must be at least 1 (the newest version is always kept).")


def main(argv):
    del argv
    model_class = method_params.model_class(FLAGS.model)
    model_params = method_params.parse_model_params(FLAGS.model_params, model_class)
    model_dir = FLAGS.model_dir or os.environ.get("AIP_MODEL_DIR") or tempfile.mkdtemp(prefix="tfcvr-")
    config = distribution.tf_config()
    strategy_name = distribution.strategy_name(config, FLAGS.strategy)
    if FLAGS.cache_input and strategy_name == "parameter_server":
        # Its workers run an input function traced on the chief: the cached records would be shipped in it.
        raise app.UsageError("--cache_input cannot be used with ParameterServerStrategy (each worker builds its "
                             "input from a function traced on the chief); drop --cache_input.")
    if strategy_name == "parameter_server" and config["task"]["type"] in ("worker", "ps"):
        distribution.run_server(config)  # the chief coordinates; workers and ps serve until the job ends
        return
    strategy = distribution.make_strategy(strategy_name, config)
    logging.info("Strategy %s (%s), %d replicas.", strategy_name, type(strategy).__name__,
                 strategy.num_replicas_in_sync)
    train_files, eval_files, schema = _data()
    keras.utils.set_random_seed(FLAGS.seed)

    replicas = strategy.num_replicas_in_sync
    if FLAGS.batch_size % replicas:
        raise app.UsageError(f"--batch_size={FLAGS.batch_size} must be a multiple of the {replicas} replicas.")
    # Under ParameterServerStrategy the coordinator hands steps to whichever worker is free, so data is not
    # sharded statically: each worker reads every file in its own random order (seed None).
    train_pipeline = pipeline_lib.TFRecordPipeline(
        train_files, schema, FLAGS.batch_size // replicas, shuffle=True,
        seed=None if strategy_name == "parameter_server" else FLAGS.seed,
        invalid_conversion=FLAGS.invalid_conversion, cache=FLAGS.cache_input,
    )
    # Unshuffled, so every worker of a distributed job derives the same statistics.
    statistics_pipeline = pipeline_lib.TFRecordPipeline(
        train_files, schema, FLAGS.batch_size, invalid_conversion=FLAGS.invalid_conversion
    )
    with statistics_pipeline.named_errors():
        numeric_statistics = statistics.numeric_statistics(statistics_pipeline.dataset(), schema)
    with strategy.scope():
        backbone = {"backbone": FLAGS.backbone} if FLAGS.backbone else {}
        model = model_class(
            schema=schema,
            **backbone,
            embedding_dim=FLAGS.embedding_dim,
            hidden_units=[int(u) for u in FLAGS.hidden_units],
            tower_units=[int(u) for u in FLAGS.tower_units],
            num_experts=FLAGS.num_experts,
            dropout=FLAGS.dropout,
            numeric_statistics=numeric_statistics,
            **model_params,
        )
        model.compile(optimizer=optimizers.make_optimizer(FLAGS.optimizer, FLAGS.learning_rate))
        model.build_optimizers()

    steps_per_epoch = FLAGS.steps_per_epoch
    if strategy_name == "multi_worker_mirrored":
        readers = strategy.num_replicas_in_sync
        logging.info("Training data split across %d workers by %s.", readers, train_pipeline.sharding(readers))
    if strategy_name != "default" and steps_per_epoch is None:
        # Workers must take the same number of steps; their shards need not hold the same records.
        records = sum(1 for _ in tf.data.TFRecordDataset(train_pipeline.files))
        steps_per_epoch = max(1, records // FLAGS.batch_size)
        logging.info("%d training records: %d steps per epoch of %d.", records, steps_per_epoch, FLAGS.batch_size)

    def dataset_fn(input_context, epoch):
        return train_pipeline.dataset(epochs=None if steps_per_epoch else 1, epoch_index=epoch,
                                      num_shards=1 if strategy_name == "parameter_server"
                                      else input_context.num_input_pipelines,
                                      shard_index=0 if strategy_name == "parameter_server"
                                      else input_context.input_pipeline_id)

    loop = TrainingLoop(
        model, strategy,
        checkpoint_dir=os.environ.get("AIP_CHECKPOINT_DIR") or os.path.join(model_dir, "checkpoints"),
        summary_dir=os.environ.get("AIP_TENSORBOARD_LOG_DIR") or os.path.join(model_dir, "logs"),
        log_every=FLAGS.log_every, checkpoint_every=FLAGS.checkpoint_every,
        steps_per_execution=FLAGS.steps_per_execution,
    )
    logging.info("Training %s (%s) on %s; model_dir %s", FLAGS.model, model.get_config()["backbone"],
                 train_files, model_dir)
    with train_pipeline.named_errors():
        training = loop.train(dataset_fn, FLAGS.epochs, FLAGS.batch_size, steps_per_epoch)
    if train_pipeline.invalid_conversions_dropped:
        logging.warning("Dropped %d training records with conversion=1 and click=0.",
                        train_pipeline.invalid_conversions_dropped)

    eval_pipeline = pipeline_lib.TFRecordPipeline(
        eval_files, schema, FLAGS.batch_size,
        ground_truth=pipeline_lib.has_ground_truth(pipeline_lib.resolve_files(eval_files)),
        invalid_conversion=FLAGS.invalid_conversion, group=schema.group_key is not None,
    )
    with eval_pipeline.named_errors():
        results = metrics.evaluate(model, eval_pipeline.dataset())
    report = {
        "model": FLAGS.model,
        "backbone": model.get_config()["backbone"],
        "metrics": results,
        "training": {**training, "dropped_invalid_conversions": train_pipeline.invalid_conversions_dropped},
        "eval_dropped_invalid_conversions": eval_pipeline.invalid_conversions_dropped,
    }
    if distribution.is_chief(strategy):
        with tf.io.gfile.GFile(os.path.join(model_dir, "metrics.json"), "w") as f:
            f.write(json.dumps(report, indent=2, allow_nan=True) + "\n")
        if os.environ.get("CLOUD_ML_TRIAL_ID"):
            _report_to_tuner(results, int(loop.global_step.numpy()))
    if FLAGS.export:
        export_base = distribution.writable_dir(os.path.join(model_dir, "export"), strategy)
        report["export"] = export.export_for_serving(model, schema, export_base, keep_versions=FLAGS.keep_versions)
        distribution.cleanup_worker_dir(export_base, os.path.join(model_dir, "export"))
    print(metrics.format_table(results, title=f"{FLAGS.model} ({report['backbone']}) on {eval_files}"))
    print(f"\n{training['steps']} steps, {training['examples_per_second']:.0f} examples/s; "
          f"model_dir: {model_dir}" + (f"; export: {report['export']}" if FLAGS.export else ""))


def _report_to_tuner(results, global_step):
    """Reports --hypertune_metric to Vertex AI's tuner (the file cloudml-hypertune writes and Vertex reads)."""
    import hypertune  # cloudml-hypertune; only needed under a tuning job

    if FLAGS.hypertune_metric not in results:
        raise app.UsageError(f"--hypertune_metric={FLAGS.hypertune_metric!r} is not an evaluation metric; "
                             f"available: {sorted(k for k, v in results.items() if isinstance(v, float))}")
    hypertune.HyperTune().report_hyperparameter_tuning_metric(
        hyperparameter_metric_tag=FLAGS.hypertune_metric, metric_value=results[FLAGS.hypertune_metric],
        global_step=global_step)
    logging.info("Reported %s=%.5f to the hyperparameter tuner.", FLAGS.hypertune_metric,
                 results[FLAGS.hypertune_metric])


def _data():
    """(train glob, eval glob, Schema): the flags' data, or a fresh simulation."""
    if FLAGS.train_files is None:
        if FLAGS.eval_files or FLAGS.schema:
            raise app.UsageError("--eval_files and --schema need --train_files (no data flags: simulate).")
        sim_dir = tempfile.mkdtemp(prefix="tfcvr-simulated-")
        paths = simulate.write_simulation(sim_dir, FLAGS.sim_rows, seed=FLAGS.seed)
        logging.info("Simulated %d impressions into %s.", FLAGS.sim_rows, sim_dir)
        return paths["train"], paths["eval"], schema_lib.load_schema(paths["schema"])
    if not FLAGS.schema:
        raise app.UsageError("--train_files needs --schema (the schema.json describing the TFRecords).")
    if not FLAGS.eval_files:
        raise app.UsageError("--train_files needs --eval_files to evaluate on.")
    return FLAGS.train_files, FLAGS.eval_files, schema_lib.load_schema(FLAGS.schema)


if __name__ == "__main__":
    app.run(main)
