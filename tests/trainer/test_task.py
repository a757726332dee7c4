import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, tiny_row, write_rows
from tfcvr import models


def _run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "trainer.task", *args], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd(), **(env or {})}, timeout=600,
    )


def test_end_to_end_on_the_simulator(tmp_path):
    model_dir = tmp_path / "run"
    result = _run("--model=naive", "--backbone=mmoe", "--sim_rows=3000", "--epochs=2", "--batch_size=256",
                  "--log_every=5", "--model_params=ctr_loss_weight=0.5", env={"AIP_MODEL_DIR": str(model_dir)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cvr_auc" in result.stdout and "oracle_cvr_auc" in result.stdout
    assert "examples/s" in result.stderr  # progress lines
    report = json.loads((model_dir / "metrics.json").read_text())
    assert report["model"] == "naive" and report["training"]["steps"] == 20
    assert report["metrics"]["impressions"] == 600
    versions = os.listdir(model_dir / "export")
    assert len(versions) == 1 and versions[0].isdigit()
    assert "serving_default" in tf.saved_model.load(str(model_dir / "export" / versions[0])).signatures
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("ckpt-20")
    assert os.listdir(model_dir / "logs")  # TensorBoard events


def test_train_files_flags(simulated, tmp_path):
    result = _run("--model=esmm", f"--train_files={simulated['train']}", f"--eval_files={simulated['eval']}",
                  f"--schema={simulated['schema']}", f"--model_dir={tmp_path}", "--epochs=1", "--batch_size=512",
                  "--noexport")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["training"]["steps"] == 5


def test_bad_training_record_is_named(tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(TINY_SCHEMA))
    train = write_rows(tmp_path / "train.tfrecord", [tiny_row()] * 30 + [tiny_row(price=None)] + [tiny_row()])
    result = _run("--model=esmm", f"--train_files={train}", f"--eval_files={train}", f"--schema={schema}",
                  f"--model_dir={tmp_path / 'run'}", "--batch_size=8")
    assert result.returncode != 0
    assert f"DataError: Invalid record 30 in {train}" in result.stderr
    assert "Feature: price (data type: float) is required but could not be found" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model=nope"], "Unknown model 'nope'. Registered models: "),
        (["--model=esmm", "--model_params=gamma=1"], "ESMM has no argument 'gamma'; it accepts ['ctr_loss_weight']"),
        (["--model=esmm", "--eval_files=x"], "--eval_files and --schema need --train_files"),
        (["--model=esmm", "--train_files=x"], "--train_files needs --schema"),
    ],
)
def test_usage_errors(args, message):
    result = _run(*args)
    assert result.returncode != 0
    assert message in result.stderr
    if args == ["--model=nope"]:
        assert all(name in result.stderr for name in models.names())
