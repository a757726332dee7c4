r"""Score an exported model on TFRecords through its serving signature: metrics.json and plots.

    python -m trainer.evaluate --export_dir=MODEL_DIR/export[/VERSION] --eval_files=GLOB --schema=schema.json
        [--output_dir=DIR] [--reference_export_dir=...] [--calibration_buckets=10]

The model is the SavedModel TF Serving would load (the newest complete version
when --export_dir is the export base), called through `serving_default` on
the serialized records, so what is measured is what is served. Writes
`metrics.json` (every metric of `tfcvr.metrics.compute_metrics`, by
population, and the per-pCTR-bucket calibration table) and
`calibration.png` into --output_dir (default:
`<export base>/../evaluation/<version>`).

D-AUC/D-NLL weight clicked impressions by 1/pCTR; UKD (Xu et al., WWW 2022,
https://doi.org/10.1145/3485447.3512081) takes pCTR from one
independently trained CTR model so that every method is weighted alike:
--reference_export_dir names that model's export (default: the evaluated
model's own pCTR).
"""

import json
import os

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from tfcvr import atomic, cli
from tfcvr.data import pipeline as pipeline_lib
from tfcvr.data import schema as schema_lib
from tfcvr.export import versions
from tfcvr.export.signatures import SERVING_DEFAULT
from tfcvr.metrics import calibration, compute_metrics, format_table, plots
from trainer import config as config_lib
from trainer import preflight

FLAGS = flags.FLAGS


def resolve_version(export_dir: str) -> str:
    """A SavedModel folder, or the newest complete version under an export base."""
    if tf.io.gfile.exists(os.path.join(export_dir, "saved_model.pb")):
        return export_dir
    found = versions.existing_versions(export_dir, complete_only=True)
    if not found:
        raise ValueError(f"{export_dir} is neither a SavedModel nor a folder of versions (<number>/saved_model.pb).")
    return os.path.join(export_dir, str(max(found)))


def resolve_version_flag(flag: str, path: str) -> str:
    """`resolve_version(path)` for a command line: a UsageError naming `flag` when there is none."""
    try:
        return resolve_version(path)
    except ValueError as e:
        raise app.UsageError(f"{flag}={path}: {e}") from None


def score(saved_model_dirs: list, pipeline: pipeline_lib.TFRecordPipeline) -> tuple:
    """([predictions of each model], labels) over one pass of the pipeline's records, from `serving_default`."""
    # Every file read through first (a fast framing pass): one cut short or corrupt is refused before any scoring,
    # or under skip_corrupt_records read up to its damage and reported; TensorFlow's reader alone would stop
    # silently at a file that ends inside a record's header.
    pipeline.record_count()
    signatures = [tf.saved_model.load(d).signatures[SERVING_DEFAULT] for d in saved_model_dirs]
    predictions: list[dict[str, list[np.ndarray]]] = [{} for _ in signatures]
    labels: dict[str, list[np.ndarray]] = {}
    with pipeline.named_errors():
        for serialized, batch_labels in pipeline.serialized_dataset():
            for signature, model_predictions in zip(signatures, predictions):
                for key, value in signature(examples=serialized).items():
                    model_predictions.setdefault(key, []).append(value.numpy())
            for key, value in batch_labels.items():
                labels.setdefault(key, []).append(value.numpy())
    if not labels:
        raise ValueError(f"No records to evaluate in {pipeline.files}.")
    return (
        [{k: np.concatenate(v) for k, v in p.items()} for p in predictions],
        {k: np.concatenate(v) for k, v in labels.items()},
    )


def evaluate_export(
    export_dir: str,
    eval_files: str | list[str],
    schema: schema_lib.Schema,
    output_dir: str | None = None,
    reference_export_dir: str | None = None,
    calibration_buckets: int = 10,
    batch_size: int = 1024,
    invalid_conversion: str = "error",
    skip_corrupt_records: bool = False,
) -> dict:
    """Scores `export_dir` on `eval_files`; writes metrics.json and calibration.png; returns the report."""
    version_dir = resolve_version(export_dir)
    files = pipeline_lib.resolve_files(eval_files)
    pipeline = pipeline_lib.TFRecordPipeline(
        files,
        schema,
        batch_size,
        ground_truth=pipeline_lib.has_ground_truth(files),
        invalid_conversion=invalid_conversion,
        group=schema.group_key is not None,
        skip_corrupt_records=skip_corrupt_records,
    )
    # One pass scores both models: the records (and any dropped-record count) are read once.
    models = [version_dir] + ([resolve_version(reference_export_dir)] if reference_export_dir else [])
    scored, labels = score(models, pipeline)
    predictions = scored[0]
    reference = scored[1]["ctr"] if reference_export_dir else None
    results = compute_metrics(predictions, labels, reference_ctr=reference)
    curve = calibration.calibration_by_bucket(
        predictions["ctr"],
        predictions["cvr"],
        labels["click"],
        labels["conversion"],
        calibration_buckets,
        true_cvr=labels.get("true_cvr"),
    )
    output_dir = output_dir or os.path.join(
        os.path.dirname(os.path.dirname(version_dir.rstrip("/"))),
        "evaluation",
        os.path.basename(version_dir.rstrip("/")),
    )
    tf.io.gfile.makedirs(output_dir)
    report = {
        "export_dir": version_dir,
        "eval_files": files,
        "reference_export_dir": reference_export_dir,
        "dropped_invalid_conversions": pipeline.invalid_conversions_dropped,
        "skipped_corrupt_records": pipeline.corrupt_records_skipped,
        "metrics": results,
        "calibration_by_pctr_bucket": curve,
    }
    atomic.write_file(os.path.join(output_dir, "metrics.json"), json.dumps(report, indent=2, allow_nan=True) + "\n")
    plots.plot_calibration(
        {os.path.basename(version_dir.rstrip("/")): curve},
        os.path.join(output_dir, "calibration.png"),
        title=version_dir,
    )
    report["output_dir"] = output_dir
    return report


def _define_flags():
    config_lib.define_flags(config_lib.EvaluationConfig, required=("export_dir",))
    config_lib.define_flags(
        config_lib.DataConfig,
        only=("eval_files", "schema", "invalid_conversion", "skip_corrupt_records"),
        required=("eval_files", "schema"),
    )
    config_lib.define_flags(config_lib.OptimizationConfig, only=("batch_size",))
    config_lib.define_flags(config_lib.ReportConfig)


def main(argv: list[str]) -> None:
    del argv
    run = config_lib.config_from_flags(config_lib.EvaluateConfig, FLAGS)
    export_dir = preflight.required_flag("--export_dir", run.evaluation.export_dir)
    eval_files = preflight.required_flag("--eval_files", run.data.eval_files)
    schema = preflight.load_schema(preflight.required_flag("--schema", run.data.schema))
    plots.require_matplotlib()  # calibration.png
    preflight.check_files("--eval_files", eval_files, schema, run.data)
    for flag, path in (
        ("--export_dir", export_dir),
        ("--reference_export_dir", run.evaluation.reference_export_dir),
    ):
        if path is not None:
            resolve_version_flag(flag, path)
    report = evaluate_export(
        export_dir,
        eval_files,
        schema,
        run.report.output_dir,
        run.evaluation.reference_export_dir,
        run.report.calibration_buckets,
        run.optimization.batch_size,
        run.data.invalid_conversion,
        run.data.skip_corrupt_records,
    )
    logging.info("Wrote %s", report["output_dir"])
    print(format_table(report["metrics"], title=f"{report['export_dir']} on {eval_files}"))
    print(f"\nmetrics.json and calibration.png in {report['output_dir']}")


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
