import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, tiny_row, write_rows
from tfcvr import models

# End-to-end: subprocesses, clusters or training to a bar; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow


def _run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "trainer.task", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd(), **(env or {})},
        timeout=600,
    )


def test_end_to_end_on_the_simulator(tmp_path):
    model_dir = tmp_path / "run"
    result = _run(
        "--model=naive",
        "--backbone=mmoe",
        "--sim_rows=3000",
        "--epochs=2",
        "--batch_size=256",
        "--log_every=5",
        "--model_params=ctr_loss_weight=0.5",
        env={"AIP_MODEL_DIR": str(model_dir)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cvr_auc" in result.stdout and "oracle_cvr_auc" in result.stdout
    assert "examples/s" in result.stderr  # progress lines
    report = json.loads((model_dir / "metrics.json").read_text())
    assert report["model"] == "naive" and report["training"]["steps"] == 20
    assert report["metrics"]["impressions"] == 600
    # The served intercepts were refitted on the 2,400 training impressions before the last evaluation and export.
    refit = report["refit_intercepts"]
    assert refit["examples"] == 2400 and 0 < refit["conversions"] < refit["clicks"] < 2400
    assert refit["cvr_offset"] == 0.0  # the default refits pCTR only
    assert "Served ctr intercepts refitted on 2400 training impressions" in result.stderr
    # Once, after the last epoch only: between the evaluations of epochs 1 and 2.
    refit_at = result.stderr.index("Served ctr intercepts refitted")
    assert result.stderr.count("intercepts refitted") == 1
    assert result.stderr.index("Evaluated after epoch 1") < refit_at < result.stderr.index("Evaluated after epoch 2")
    versions = os.listdir(model_dir / "export")
    assert len(versions) == 1 and versions[0].isdigit()
    assert "serving_default" in tf.saved_model.load(str(model_dir / "export" / versions[0])).signatures
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("ckpt-20")
    # TensorBoard: the loop's scalars in logs/train, the evaluation after each epoch in logs/eval.
    assert os.listdir(model_dir / "logs" / "train") and os.listdir(model_dir / "logs" / "eval")
    assert "(10/10 of the epoch)" in result.stderr  # progress step/total: 2,400 records / 256 per batch
    assert "Evaluated after epoch 1 (step 10)" in result.stderr and "Evaluated after epoch 2 (step 20)" in result.stderr
    # Only the run's own progress: no INFO line of TensorFlow's or Keras' modules (checkpoint sharding, assets).
    sources = set(re.findall(r"^I\d{4} [\d:.]+ +\d+ (\w+\.py):\d+\]", result.stderr, re.MULTILINE))
    assert sources and sources <= {"task.py", "loop.py"}, sources
    assert "INFO:tensorflow" not in result.stderr

    # The run's configuration is written beside it and repeats it; given flags replace its settings.
    config = json.loads((model_dir / "run_config.json").read_text())
    assert config["method"] == {"model": "naive", "model_params": ["ctr_loss_weight=0.5"]}
    assert config["architecture"]["backbone"] == "mmoe" and config["data"]["sim_rows"] == 3000
    assert config["output"]["model_dir"] == str(model_dir) and config["optimization"]["epochs"] == 2
    again = tmp_path / "again"
    result = _run(f"--config={model_dir / 'run_config.json'}", f"--model_dir={again}", "--noexport")
    assert result.returncode == 0, result.stderr[-3000:]
    repeated = json.loads((again / "metrics.json").read_text())
    assert repeated["model"] == "naive" and repeated["training"]["steps"] == 20
    assert repeated["metrics"]["cvr_auc"] == pytest.approx(report["metrics"]["cvr_auc"], abs=1e-4)
    assert not (again / "export").exists()


def test_train_files_flags(simulated, tmp_path):
    result = _run(
        "--model=esmm",
        f"--train_files={simulated['train']}",
        f"--eval_files={simulated['eval']}",
        f"--schema={simulated['schema']}",
        f"--model_dir={tmp_path}",
        "--epochs=1",
        "--batch_size=512",
        "--noexport",
        "--refit_intercepts=none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["training"]["steps"] == 5 and "refit_intercepts" not in report


def test_ple_with_a_feature_interaction_trains_warm_starts_and_guards_its_folder(simulated, tmp_path):
    data = [
        f"--train_files={simulated['train']}",
        f"--eval_files={simulated['eval']}",
        f"--schema={simulated['schema']}",
    ]
    architecture = ["--backbone=ple", "--interaction=dot", "--extraction_levels=2", "--task_experts=2"]
    first = _run("--model=escm2_ipw", *data, *architecture, f"--model_dir={tmp_path / 'day1'}", "--batch_size=512")
    assert first.returncode == 0, first.stderr[-3000:]
    config = json.loads((tmp_path / "day1" / "run_config.json").read_text())["architecture"]
    assert (config["backbone"], config["interaction"], config["task_experts"]) == ("ple", "dot", 2)
    # The next day's run of the same architecture starts from the first's weights.
    second = _run(
        "--model=escm2_ipw",
        *data,
        *architecture,
        f"--model_dir={tmp_path / 'day2'}",
        f"--warm_start_from={tmp_path / 'day1'}",
        "--batch_size=512",
        "--noexport",
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads((tmp_path / "day2" / "metrics.json").read_text())["warm_start"]["restored"] > 0
    # Another backbone or interaction in the first run's folder is another model: refused, naming the change.
    for changed, expected in (
        (["--backbone=mmoe", "--interaction=dot"], "config.backbone: 'ple' -> 'mmoe'"),
        (["--backbone=ple", "--interaction=cross"], "config.interaction: 'dot' -> 'cross'"),
    ):
        refused = _run("--model=escm2_ipw", *data, *changed, f"--model_dir={tmp_path / 'day1'}", "--batch_size=512")
        assert refused.returncode == 2 and expected in refused.stderr, refused.stderr[-2000:]


def test_cached_input_trains_every_epoch(simulated, tmp_path):
    result = _run(
        "--model=esmm",
        f"--train_files={simulated['train']}",
        f"--eval_files={simulated['eval']}",
        f"--schema={simulated['schema']}",
        f"--model_dir={tmp_path}",
        "--epochs=3",
        "--batch_size=512",
        "--cache_input",
        "--noexport",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["training"]["steps"] == 15  # 2,400 records -> 5 batches (4 full + 1 short) per epoch
    assert 0.0 < report["metrics"]["cvr_auc"] < 1.0


def test_bad_training_record_is_named(tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(TINY_SCHEMA))
    train = write_rows(tmp_path / "train.tfrecord", [tiny_row()] * 30 + [tiny_row(price=None)] + [tiny_row()])
    result = _run(
        "--model=esmm",
        f"--train_files={train}",
        f"--eval_files={train}",
        f"--schema={schema}",
        f"--model_dir={tmp_path / 'run'}",
        "--batch_size=8",
    )
    assert result.returncode == 2  # a data error: one line, no traceback
    assert f"trainer.task: error: Invalid record 30 in {train}" in result.stderr and "Traceback" not in result.stderr
    assert "Feature: price (data type: float) is required but could not be found" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model=nope"], "Unknown model 'nope'. Registered models: "),
        (["--model=esmm", "--model_params=gamma=1"], "ESMM has no argument 'gamma'; it accepts ['ctr_loss_weight']"),
        (
            ["--model=evi", "--model_params=use_vie=Flase"],
            "--model_params: EVI's use_vie takes true or false. Received: 'Flase'",
        ),
        (["--config=/no/such/run_config.json"], "--config=/no/such/run_config.json: no such file"),
        (["--model=esmm", "--eval_files=x"], "--eval_files and --schema need --train_files"),
        (["--model=esmm", "--train_files=x"], "--train_files needs --schema"),
        (
            ["--model=esmm", "--strategy=parameter_server", "--cache_input"],
            "--cache_input cannot be used with ParameterServerStrategy",
        ),
    ],
)
def test_usage_errors(args, message):
    result = _run(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr  # the one-line error, no log line before it
    if args == ["--model=nope"]:
        assert all(name in result.stderr for name in models.names())


def test_killed_job_resumes_from_its_last_checkpoint(simulated, tmp_path):
    import signal
    import time

    model_dir = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "trainer.task",
        "--model=dr_jl",
        f"--train_files={simulated['train']}",
        f"--eval_files={simulated['eval']}",
        f"--schema={simulated['schema']}",
        f"--model_dir={model_dir}",
        "--batch_size=16",
        "--epochs=2",
        "--checkpoint_every=20",
        "--log_every=1000",
        "--noexport",
    ]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = model_dir / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if (
            tf.train.latest_checkpoint(str(checkpoints))
            and int(tf.train.latest_checkpoint(str(checkpoints)).rsplit("-", 1)[1]) >= 40
        ):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = tf.train.latest_checkpoint(str(checkpoints))
    saved_step = int(saved.rsplit("-", 1)[1])
    assert 40 <= saved_step < 300, saved  # killed before the end of the second 150-step epoch
    reader = tf.train.load_checkpoint(saved)
    assert reader.get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE") == saved_step
    assert reader.get_tensor("model/optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == saved_step

    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Restored {saved}: step {saved_step}" in result.stderr
    report = json.loads((model_dir / "metrics.json").read_text())
    # 2,400 records / 16 = 150 steps per epoch: the restarted job runs only what was left.
    assert report["training"]["steps"] == 300 - saved_step
    final = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(checkpoints)))
    assert final.get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE") == 300
    # Both optimizers (prediction and imputation) continued from their saved state.
    assert final.get_tensor("model/optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 300
    assert final.get_tensor("model/imputation_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 300


def test_tuning_metric_is_reported_under_a_tuning_job(simulated, tmp_path):
    metric_file = tmp_path / "hypertune" / "output.metrics"
    result = _run(
        "--model=esmm",
        f"--train_files={simulated['train']}",
        f"--eval_files={simulated['eval']}",
        f"--schema={simulated['schema']}",
        f"--model_dir={tmp_path / 'run'}",
        "--batch_size=512",
        "--noexport",
        "--hypertune_metric=ctcvr_auc",
        env={"CLOUD_ML_TRIAL_ID": "7", "CLOUD_ML_HP_METRIC_FILE": str(metric_file)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reported = json.loads(metric_file.read_text().splitlines()[-1])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    assert reported["trial"] == "7" and float(reported["ctcvr_auc"]) == pytest.approx(metrics["ctcvr_auc"])
    assert reported["global_step"] == "5"
