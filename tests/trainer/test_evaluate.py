"""trainer.evaluate scores an exported model through serving_default, as served."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfcvr import export, metrics, models
from tfcvr.data import TFRecordPipeline, statistics
from trainer import evaluate


def _exported(schema, base, version, seed, train_files=None):
    """A tiny esmm, trained one epoch when `train_files` are given (untrained scores nearly tie)."""
    keras.utils.set_random_seed(seed)
    numeric = (
        statistics.numeric_statistics(TFRecordPipeline(train_files, schema, 512).dataset(), schema)
        if train_files
        else None
    )
    model = models.build(
        "esmm", schema, embedding_dim=4, hidden_units=(8,), tower_units=(4,), numeric_statistics=numeric
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    if train_files:
        for batch in TFRecordPipeline(train_files, schema, 256, shuffle=True, seed=seed).dataset():
            model.train_step(batch)
    return model, export.export_for_serving(model, schema, base, version=version)


def test_metrics_match_the_in_process_model(simulated, tmp_path):
    schema = simulated["schema_obj"]
    base = str(tmp_path / "export")
    model, _ = _exported(schema, base, 5, seed=1, train_files=simulated["train"])
    os.makedirs(os.path.join(base, "9"))  # an incomplete version (no saved_model.pb) is not chosen
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer.evaluate",
            f"--export_dir={base}",
            f"--eval_files={simulated['eval']}",
            f"--schema={simulated['schema']}",
            "--calibration_buckets=4",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output_dir = tmp_path / "evaluation" / "5"
    report = json.loads((output_dir / "metrics.json").read_text())
    assert report["export_dir"] == os.path.join(base, "5")
    assert (output_dir / "calibration.png").stat().st_size > 1000
    assert len(report["calibration_by_pctr_bucket"]) == 4
    assert sum(row["impressions"] for row in report["calibration_by_pctr_bucket"]) == 600

    pipeline = TFRecordPipeline(simulated["eval"], schema, 512, ground_truth=True, group=True)
    expected = metrics.compute_metrics(*metrics.collect_predictions(model, pipeline.dataset()))
    for key in (
        "ctr_auc",
        "cvr_auc",
        "d_cvr_auc",
        "d_cvr_nll",
        "ctcvr_gauc",
        "oracle_cvr_auc",
        "cvr_pcoc",
        "cvr_bias_unclicked",
    ):
        assert report["metrics"][key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key
    assert report["metrics"]["impressions"] == 600 and report["metrics"]["gauc_groups"] > 0


def test_reference_ctr_model_weights_debiased_metrics(simulated, tmp_path):
    schema = simulated["schema_obj"]
    _, own = _exported(schema, str(tmp_path / "a"), 1, seed=1)
    _, other = _exported(schema, str(tmp_path / "b"), 1, seed=2)
    alone = evaluate.evaluate_export(own, simulated["eval"], schema, output_dir=str(tmp_path / "e1"))
    weighted = evaluate.evaluate_export(
        own, simulated["eval"], schema, output_dir=str(tmp_path / "e2"), reference_export_dir=other
    )
    assert weighted["metrics"]["cvr_auc"] == pytest.approx(alone["metrics"]["cvr_auc"])
    assert weighted["metrics"]["d_cvr_nll"] != pytest.approx(alone["metrics"]["d_cvr_nll"])
    assert np.isfinite(weighted["metrics"]["d_cvr_auc"])


def test_export_dir_must_hold_a_model(tmp_path):
    with pytest.raises(ValueError, match="is neither a SavedModel nor a folder of versions"):
        evaluate.resolve_version(str(tmp_path))
