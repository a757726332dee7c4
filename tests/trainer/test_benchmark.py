"""trainer.benchmark: the leaderboard end to end on a tiny simulated log, and selection that never reads test files."""

import csv
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tfcvr import atomic, metrics
from tfcvr.data import pipeline as pipeline_lib
from tfcvr.data import simulate
from tfcvr.models.esmm import ESMM
from trainer import benchmark
from trainer import config as config_lib
from trainer.loop import TrainingLoop

# End-to-end: subprocesses, clusters or training to a bar; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow


def _config(output_dir, epochs, cache_input=False, refit_intercepts="ctr"):
    """esmm (and naive) twice, seeds 3 and 4, on small towers."""
    return config_lib.BenchmarkConfig(
        data=config_lib.DataConfig(cache_input=cache_input),
        architecture=config_lib.ArchitectureConfig(embedding_dim=4, hidden_units=[8], tower_units=[4]),
        optimization=config_lib.OptimizationConfig(
            epochs=epochs, batch_size=256, seed=3, refit_intercepts=refit_intercepts
        ),
        leaderboard=config_lib.LeaderboardConfig(models=["esmm"], runs=2, selection_metric="ctcvr_auc"),
        report=config_lib.ReportConfig(output_dir=str(output_dir)),
    )


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return simulate.write_simulation(
        str(tmp_path_factory.mktemp("sim")), 2500, seed=5, eval_fraction=0.2, valid_fraction=0.2, num_shards=2
    )


def test_leaderboard_selects_on_validation_only(tiny_data, tmp_path, monkeypatch):
    events, test_datasets = [], []
    test_files = set(pipeline_lib.resolve_files(tiny_data["eval"]))

    class RecordingPipeline(pipeline_lib.TFRecordPipeline):
        def dataset(self, *args, **kwargs):
            dataset = super().dataset(*args, **kwargs)
            if set(self.files) & test_files:
                test_datasets.append(dataset)
            return dataset

    original_train, original_collect = TrainingLoop.train, benchmark.metrics_lib.collect_predictions

    def recording_train(self, *args, **kwargs):
        events.append("train")
        return original_train(self, *args, **kwargs)

    def recording_collect(model, dataset):  # a read of a split: the test split's datasets are built once, read often
        events.append("test" if any(dataset is d for d in test_datasets) else "other")
        return original_collect(model, dataset)

    monkeypatch.setattr(pipeline_lib, "TFRecordPipeline", RecordingPipeline)
    monkeypatch.setattr(TrainingLoop, "train", recording_train)
    monkeypatch.setattr(benchmark.metrics_lib, "collect_predictions", recording_collect)
    lines = []
    board = benchmark.Leaderboard(tiny_data, _config(tmp_path, epochs=2), log=lines.append)
    result = board.run()

    # naive is added as the baseline; each of 4 (method, run) pairs trains 2 epochs, then reads the test files once.
    assert result["names"] == ["naive", "esmm"]
    assert events.count("train") == 8 and events.count("test") == 4
    runs = "".join("T" if e == "train" else "X" if e == "test" else "" for e in events)
    assert runs == "TTX" * 4  # the test split is read only after a run's last epoch
    for name in ("naive", "esmm"):
        for run in result["results"][name]:
            assert run["selected_epoch"] in (1, 2) and len(run["valid_history"]) == 2
            chosen = run["valid_history"][run["selected_epoch"] - 1]
            # The best of the epochs not set aside for over-predicting the clicked rows (trainer.epoch_selection).
            kept = [v for e, v in enumerate(run["valid_history"], start=1) if e not in run["set_aside_epochs"]]
            assert run["selected_epoch"] not in run["set_aside_epochs"] or not kept
            assert not kept or chosen == max(kept)
    assert [r["seed"] for r in result["results"]["esmm"]] == [3, 4]
    assert any("[4/4] esmm run 2/2" in line for line in lines)
    assert any("(best so far)" in line for line in lines)

    # Outputs: tables name the methods, CSVs hold every metric, plots exist.
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "| naive |" in markdown and "| esmm |" in markdown and "oracle_cvr_auc" in markdown
    assert "p-values against naive" in markdown
    assert "among the epochs whose validation pCVR on clicked rows is at most 1 + 3/√conversions" in markdown
    # The recommendation: validation metrics of the selected epoch, D-NLL weighted by naive's validation pCTR.
    advice = result["recommendation"]
    assert "## Recommendation" in markdown and advice["recommended"] in ("naive", "esmm")
    for name in ("naive", "esmm"):
        for run in result["results"][name]:
            assert 0.0 < run["validation_metrics"]["d_cvr_nll"] < 5.0
    ranked = {name: mean for name, mean, _ in advice["ranking"]}
    for name in ranked:
        expected = sum(r["validation_metrics"]["d_cvr_nll"] for r in result["results"][name]) / 2
        assert ranked[name] == pytest.approx(expected)
    with open(tmp_path / "leaderboard.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == {"naive", "esmm"}
    esmm_d_auc = [r for r in rows if r["method"] == "esmm" and r["metric"] == "d_cvr_auc"][0]
    assert 0.0 <= float(esmm_d_auc["mean"]) <= 1.0 and esmm_d_auc["best_other"] == "naive"
    assert math.isnan(float([r for r in rows if r["method"] == "naive" and r["metric"] == "cvr_auc"][0]["p_vs_naive"]))
    with open(tmp_path / "runs.csv") as f:
        run_rows = list(csv.DictReader(f))
    assert [(r["method"], r["run"]) for r in run_rows] == [("naive", "0"), ("naive", "1"), ("esmm", "0"), ("esmm", "1")]
    set_aside = [";".join(map(str, r["set_aside_epochs"])) for n in ("naive", "esmm") for r in result["results"][n]]
    assert [r["set_aside_epochs"] for r in run_rows] == set_aside
    for plot in ("metrics.png", "calibration.png", "bias.png"):
        assert (tmp_path / "plots" / plot).stat().st_size > 1000
    assert not [p for p in os.listdir(tmp_path) if p.startswith(("naive-", "esmm-"))]  # checkpoints removed

    # Writing the outputs again, cut short at each file in turn (a full disk): leaderboard.json, written last, is
    # absent after every failure, so a folder without it reads as incomplete; once writes succeed it is back.
    written = []
    write_file = atomic.write_file
    monkeypatch.setattr(atomic, "write_file", lambda path, contents: written.append(path) or write_file(path, contents))
    board._write(result)
    assert [os.path.basename(p) for p in written] == [
        "leaderboard.md",
        "leaderboard.csv",
        "runs.csv",
        "metrics.png",
        "calibration.png",
        "bias.png",
        "leaderboard.json",
    ]
    for failing in range(len(written)):
        calls = []

        def full_disk(path, contents, failing=failing, calls=calls):
            calls.append(path)
            if len(calls) > failing:
                raise OSError(28, "No space left on device", path)
            write_file(path, contents)

        monkeypatch.setattr(atomic, "write_file", full_disk)
        with pytest.raises(OSError, match="No space left"):
            board._write(result)
        assert not (tmp_path / "leaderboard.json").exists()
    monkeypatch.setattr(atomic, "write_file", write_file)
    board._write(result)
    assert (tmp_path / "leaderboard.json").exists()


def test_cached_input_parses_train_and_valid_once_for_every_run(tiny_data, tmp_path, monkeypatch):
    fills = []
    original = pipeline_lib._Columns.__init__

    def counting_init(self, dataset):
        fills.append(dataset.element_spec[1]["click"].shape)
        original(self, dataset)

    monkeypatch.setattr(pipeline_lib._Columns, "__init__", counting_init)
    board = benchmark.Leaderboard(tiny_data, _config(tmp_path, epochs=2, cache_input=True), log=lambda line: None)
    result = board.run()
    assert len(fills) == 2  # train and valid, for 2 methods x 2 runs x 2 epochs
    assert board.describe()["config"]["data"]["cache_input"] is True
    for name in ("naive", "esmm"):
        assert [r["seed"] for r in result["results"][name]] == [3, 4]
        assert all(0.0 < r["metrics"]["ctcvr_auc"] < 1.0 for r in result["results"][name])


def test_an_epoch_that_over_predicts_the_clicked_rows_is_not_kept(tiny_data, tmp_path, monkeypatch):
    # Epoch 2 scores best but its validation pCVR on the clicked rows is 5x the conversions (over 1 + 3/√c, c ≥ 1):
    # epoch 1's weights are kept, and the run records the set-aside epoch; without positive selection, epoch 2.
    real = benchmark.metrics_lib.compute_metrics
    calls = []

    def scripted(predictions, labels, **kwargs):
        scores = real(predictions, labels, **kwargs)
        calls.append(1)
        return {**scores, "ctcvr_auc": 0.5 + 0.1 * len(calls), "cvr_pcoc": 1.0 if len(calls) == 1 else 5.0}

    snapshots = []
    for positive_selection, kept, set_aside in ((True, 1, [2]), (False, 2, [])):
        calls.clear()
        monkeypatch.setattr(benchmark.metrics_lib, "compute_metrics", scripted)
        config = _config(tmp_path, epochs=2, refit_intercepts="none")
        config.leaderboard.positive_selection = positive_selection
        board = benchmark.Leaderboard(tiny_data, config, log=lambda line: None)
        model, selection, _ = board.train_and_select(
            "esmm", 0, on_epoch=lambda epoch, model, validation: snapshots.append(model.get_weights())
        )
        monkeypatch.undo()
        assert selection["selected_epoch"] == kept and selection["set_aside_epochs"] == set_aside
        for actual, expected in zip(model.get_weights(), snapshots[-2:][kept - 1]):
            np.testing.assert_array_equal(actual, expected)


def test_paired_p_value():  # `better` and `selection_direction`: tests/trainer/test_epoch_selection.py
    assert benchmark.paired_p_value([0.7, 0.72, 0.71], [0.6, 0.61, 0.62]) < 0.01
    assert math.isnan(benchmark.paired_p_value([0.7], [0.6]))
    assert math.isnan(benchmark.paired_p_value([0.7, 0.8], [0.6, 0.7]))  # constant difference: no variance


def test_command_line_needs_all_data_flags(tiny_data, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "trainer.benchmark", f"--train_files={tiny_data['train']}", f"--output_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert result.returncode != 0
    assert "missing ['--valid_files', '--eval_files', '--schema']" in result.stderr


def test_a_diverged_run_is_reported_counted_and_set_aside(tiny_data, tmp_path, monkeypatch):
    original = ESMM.objective

    def diverging_objective(self, labels, predictions):
        terms = original(self, labels, predictions)
        return {**terms, "loss": terms["loss"] * float("nan")}

    monkeypatch.setattr(ESMM, "objective", diverging_objective)
    lines = []
    board = benchmark.Leaderboard(tiny_data, _config(tmp_path, epochs=1), log=lines.append)
    result = board.run()
    assert sum("esmm run" in line and "DIVERGED" in line and "not finite" in line for line in lines) == 2
    assert all(run["diverged"] and run["metrics"] == {} for run in result["results"]["esmm"])
    assert math.isnan(result["summary"]["esmm"]["ctcvr_auc"][0])
    advice = result["recommendation"]
    assert advice["recommended"] == "naive" and "diverged" in advice["excluded"]["esmm"]
    with open(tmp_path / "runs.csv") as f:
        assert [r["valid_ctcvr_auc"] for r in csv.DictReader(f) if r["method"] == "esmm"] == ["diverged"] * 2


def test_train_and_select_starts_from_initial_weights_and_calls_on_epoch(tiny_data, tmp_path):
    board = benchmark.Leaderboard(tiny_data, _config(tmp_path, epochs=2), log=lambda line: None)
    trained, selection, _ = board.train_and_select("esmm", 0)
    # The selected weights' served pCTR intercept was refitted on the training files (the default target "ctr").
    refit = selection["intercepts"]
    assert refit["examples"] > 0 and refit["cvr_offset"] == 0.0
    offsets = trained.get_layer("intercept_calibration")
    assert float(offsets.ctr_offset.numpy()) == pytest.approx(refit["ctr_offset"])
    start = {path: variable.numpy() for path, variable in trained.weights_by_path().items()}
    bias = next(path for path in start if path.endswith("cvr_head/bias"))
    start[bias] = start[bias] + 5.0  # far from anywhere an initialisation or training puts it
    start["intercept_calibration/ctr_offset"] = np.float32(5.0)  # yesterday's refit: never carried over
    seen = []
    model, selection, _ = board.train_and_select(
        "esmm",
        0,
        initial_weights=start,
        on_epoch=lambda epoch, model, validation: seen.append(
            (
                epoch,
                model.weights_by_path()[bias].numpy()[0],
                float(model.get_layer("intercept_calibration").ctr_offset.numpy()),
                metrics.compute_metrics(*validation)["ctcvr_auc"],
            )
        ),
    )
    assert [epoch for epoch, *_ in seen] == [1, 2]
    # Each epoch's validation outputs are the ones selection scored (on ctcvr_auc here).
    assert [auc for *_, auc in seen] == pytest.approx(selection["valid_history"], rel=1e-6)
    assert seen[0][2] == seen[1][2] == 0.0  # not yesterday's 5: until the refit the heads are served as trained
    assert float(model.get_layer("intercept_calibration").ctr_offset.numpy()) == pytest.approx(
        selection["intercepts"]["ctr_offset"]
    )
    # Adam moves a weight by at most about the learning rate (1e-3) per step: 8 steps per epoch.
    assert abs(seen[0][1] - start[bias][0]) < 0.05  # the learned weights were carried over
    # --refit_intercepts=none: the heads as trained, no refit recorded.
    heads = benchmark.Leaderboard(
        tiny_data, _config(tmp_path, epochs=1, refit_intercepts="none"), log=lambda line: None
    )
    model, selection, _ = heads.train_and_select("esmm", 0)
    assert "intercepts" not in selection
    assert float(model.get_layer("intercept_calibration").ctr_offset.numpy()) == 0.0
    with pytest.raises(KeyError):
        board.train_and_select("esmm", 0, initial_weights={"no/such/weight": 0.0})
