"""trainer.compare: the paired gate between two exports, in process and as a command's exit status."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import exported_esmm
from tfcvr.data import TFRecordPipeline
from trainer import compare, evaluate


def _labels(n, rng):
    click = (rng.uniform(size=n) < 0.3).astype(np.int64)
    conversion = click * (rng.uniform(size=n) < 0.4).astype(np.int64)
    return {"click": click, "conversion": conversion}


def _predictions(ctr, cvr):
    return {"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr}


def test_the_gate_on_hand_made_predictions():
    rng = np.random.default_rng(0)
    labels = _labels(20_000, rng)
    good = _predictions(np.full(20_000, 0.3), np.full(20_000, 0.4))  # the true rates
    report = compare.compare(good, good, labels)
    assert report["decision"] == "promote" and report["worse_on"] == []
    assert report["metrics"]["ctcvr_log_loss"]["mean_difference"] == 0.0
    bad = _predictions(np.full(20_000, 0.3), np.full(20_000, 0.6))  # a miscalibrated CVR
    report = compare.compare(good, bad, labels, gate_metrics=["ctcvr_log_loss", "cvr_log_loss_clicked"])
    assert (
        report["worse_on"] == ["ctcvr_log_loss", "cvr_log_loss_clicked"] and report["decision"] == "keep the baseline"
    )
    assert report["metrics"]["cvr_log_loss_clicked"]["records"] == int(labels["click"].sum())  # clicked rows only
    # By hand: on clicked rows, log loss of 0.6 vs 0.4 with conversion rate r.
    r = labels["conversion"].sum() / labels["click"].sum()
    by_hand = -(r * np.log(0.6) + (1 - r) * np.log(0.4)) + (r * np.log(0.4) + (1 - r) * np.log(0.6))
    assert report["metrics"]["cvr_log_loss_clicked"]["mean_difference"] == pytest.approx(by_hand, rel=1e-9)
    # A margin large enough tolerates the difference.
    assert compare.compare(good, bad, labels, margin=1.0)["decision"] == "promote"
    # No evidence is no pass: a NaN score, or a gate metric with nothing to test (no clicks).
    nan = _predictions(np.full(20_000, 0.3), np.full(20_000, np.nan))
    assert compare.compare(good, nan, labels)["worse_on"] == ["ctcvr_log_loss"]
    no_clicks = {"click": np.zeros(100, np.int64), "conversion": np.zeros(100, np.int64)}
    small = _predictions(np.full(100, 0.3), np.full(100, 0.4))
    report = compare.compare(small, small, no_clicks, gate_metrics=["cvr_log_loss_clicked"])
    assert report["worse_on"] == ["cvr_log_loss_clicked"] and "0 records" in compare.format_comparison(report)
    with pytest.raises(ValueError, match="choose among"):
        compare.compare(good, bad, labels, gate_metrics=["auc"])


def test_command_exit_status_is_the_decision(simulated, tmp_path):
    schema = simulated["schema_obj"]
    base = str(tmp_path / "export")
    exported_esmm(schema, base, 1, seed=1)  # untrained
    exported_esmm(schema, base, 2, seed=1, train_files=simulated["train"])  # trained: better

    def run(baseline, candidate):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "trainer.compare",
                f"--baseline={baseline}",
                f"--candidate={candidate}",
                f"--eval_files={simulated['eval']}",
                f"--schema={simulated['schema']}",
                f"--output_dir={tmp_path / 'report'}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )

    # The trained version against the untrained one, in process: promoted.
    pipeline = TFRecordPipeline(simulated["eval"], schema, 512, group=True)
    (baseline, candidate), labels = evaluate.score([os.path.join(base, "1"), os.path.join(base, "2")], pipeline)
    promoted = compare.compare(baseline, candidate, labels)
    assert promoted["decision"] == "promote" and promoted["metrics"]["ctcvr_log_loss"]["records"] == 600
    assert promoted["metrics"]["ctcvr_log_loss"]["mean_difference"] < 0
    # The other way round, as a scheduler runs it: worse, exit status 3, comparison.json written.
    kept = run(base, os.path.join(base, "1"))  # the base: its newest version, 2, is the baseline
    assert kept.returncode == 3 and "WORSE" in kept.stdout and "Decision: keep the baseline" in kept.stdout, kept.stdout
    report = json.loads((tmp_path / "report" / "comparison.json").read_text())
    assert report["baseline"] == os.path.join(base, "2") and report["worse_on"] == ["ctcvr_log_loss"]
