"""trainer.evaluate scores an exported model through serving_default, as served."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import corrupt_copy, exported_esmm
from tfcvr import metrics
from tfcvr.data import DataError, TFRecordPipeline
from trainer import evaluate


def test_metrics_match_the_in_process_model(simulated, tmp_path):
    schema = simulated["schema_obj"]
    base = str(tmp_path / "export")
    model, _ = exported_esmm(schema, base, 5, seed=1, train_files=simulated["train"])
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
    _, own = exported_esmm(schema, str(tmp_path / "a"), 1, seed=1)
    _, other = exported_esmm(schema, str(tmp_path / "b"), 1, seed=2)
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


def test_skip_corrupt_records_scores_the_readable_records_and_reports_the_rest(simulated, tmp_path):
    schema = simulated["schema_obj"]
    base = str(tmp_path / "export")
    exported_esmm(schema, base, 1, seed=1)
    (source,) = tf.io.gfile.glob(simulated["eval"])
    damaged = str(tmp_path / "damaged.tfrecord")
    total = corrupt_copy(source, damaged, record=100)
    with pytest.raises(DataError, match=f"{damaged} is corrupt or truncated at record 100"):
        evaluate.evaluate_export(base, [source, damaged], schema, str(tmp_path / "strict"))
    report = evaluate.evaluate_export(base, [source, damaged], schema, str(tmp_path / "out"), skip_corrupt_records=True)
    assert report["metrics"]["impressions"] == total + 100
    (skipped,) = report["skipped_corrupt_records"]
    assert (skipped["file"], skipped["records_read"], skipped["records_lost"]) == (damaged, 100, total - 100)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["skipped_corrupt_records"] == report["skipped_corrupt_records"]
