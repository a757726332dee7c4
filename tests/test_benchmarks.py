"""The benchmarks' plumbing: the official DDPO column is skipped with a reason, its data and timer are right; the
sweep's calibration verdicts."""

import stat
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import debiasing_sweep  # noqa: E402
import entire_space_ctcvr  # noqa: E402
import official_ddpo  # noqa: E402
import selection_replay  # noqa: E402
import step_times  # noqa: E402
import throughput  # noqa: E402

from trainer.epoch_selection import EpochSelection  # noqa: E402


def _measure(checkout, torch_python, tmp_path, rows=10):
    files = str(tmp_path / "train-*.tfrecord")
    schema = throughput.aliccp_shaped_schema()
    return throughput.measure_official_ddpo(checkout, torch_python, files, schema, rows, 4, 1, 2)


def test_official_column_says_why_it_is_skipped(tmp_path):
    assert "--official_ddpo=<a checkout of https://github.com/TL-UESTC/DDPO> not given" in _measure(
        None, "python3", tmp_path
    )
    assert "has no main.py" in _measure(str(tmp_path), "python3", tmp_path)
    checkout = tmp_path / "DDPO"
    checkout.mkdir()
    (checkout / "main.py").write_text("")
    assert "--torch_python=/nonexistent/python cannot run" in _measure(str(checkout), "/nonexistent/python", tmp_path)
    no_torch = tmp_path / "python-without-torch"
    no_torch.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")
    no_torch.chmod(no_torch.stat().st_mode | stat.S_IEXEC)
    message = _measure(str(checkout), str(no_torch), tmp_path)
    assert message.endswith("cannot import torch, pandas, sklearn, tqdm (ModuleNotFoundError: No module named 'torch')")
    silent = tmp_path / "python-that-fails-silently"
    silent.write_text("#!/bin/sh\nexit 1\n")
    silent.chmod(silent.stat().st_mode | stat.S_IEXEC)
    assert _measure(str(checkout), str(silent), tmp_path).endswith("(no message)")
    # A "Python" whose imports succeed and whose run of the official code fails.
    failing = tmp_path / "python-whose-run-fails"
    failing.write_text('#!/bin/sh\n[ "$1" = "-c" ] && exit 0\necho "Traceback: boom" >&2\nexit 3\n')
    failing.chmod(failing.stat().st_mode | stat.S_IEXEC)
    throughput.write_data(str(tmp_path), rows=12, num_shards=2)  # the TFRecords must hold --rows records
    assert "holds 12 records, not --rows=10" in _measure(str(checkout), str(failing), tmp_path)
    assert not list(tmp_path.glob("*.csv"))  # nothing written for a column that is skipped
    message = _measure(str(checkout), str(failing), tmp_path, rows=12)
    assert "the official code failed" in message and message.endswith("Traceback: boom\n")
    assert (tmp_path / "official_ddpo-12.csv").is_file()


def test_official_csv_holds_the_tfrecords_rows_in_its_column_order(tmp_path):
    path = tmp_path / "train.csv"
    throughput.write_official_csv(str(path), rows=50, seed=3)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:2] == ["click", "conversion"]  # AliCCPDataset: labels first, then the id fields
    assert header[2:] == [f"f{name}" for name in throughput.CARDINALITIES]
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64)
    columns = throughput.simulate_columns(50, seed=3)
    for index, name in enumerate(header):
        np.testing.assert_array_equal(table[:, index], columns[name])
    assert np.all(columns["conversion"] <= columns["click"])


def test_timed_batches_read_epoch_after_epoch_and_stamp_every_step():
    batches = official_ddpo.TimedBatches(["a", "b", "c"], count=7)
    assert list(batches) == ["a", "b", "c", "a", "b", "c", "a"]
    assert len(batches.stamps) == 8 and batches.stamps == sorted(batches.stamps)


def test_step_time_summary_by_hand():
    result = step_times.summary([0.01, 0.02, 0.04], batch_size=100)
    assert result["examples_per_s"] == pytest.approx(5000.0)  # median 20 ms
    assert result["mean_examples_per_s"] == pytest.approx(100 / (0.07 / 3), rel=1e-3)
    assert step_times.summary([0.01, 0.02, 0.04], 100, rate_of="mean")["examples_per_s"] == pytest.approx(4285.7)


def test_sweep_calibration_verdicts_by_hand():
    # 100 test conversions: the test-label bound is max(5%, 2/10) = 0.2; 400 training conversions: the
    # expected-count bound is max(5%, 2/20) = 0.1. 10,000 clicks (test and training): 5% for pCTR.
    def run(ctcvr, oracle_ctcvr, ctr=1.0):
        return {
            "ctr_pcoc": ctr,
            "ctcvr_pcoc": ctcvr,
            "oracle_ctr_pcoc": ctr,
            "oracle_ctcvr_pcoc": oracle_ctcvr,
            "clicks": 10_000,
            "conversions": 100,
        }

    training = {"clicks": 10_000, "conversions": 400}
    results = {
        "within": [run(1.19, 1.09)],  # inside both bounds
        "label_noise": [run(1.3, 1.05)],  # 30% off the test labels, 5% off the expected count
        "biased": [run(1.15, 1.15)],  # inside the labels' noise, 15% off the expected count
        "ctr_off": [run(1.0, 1.0, ctr=1.06)],  # pCTR 6% off: beyond 5%
        "unknown": [run(1.0, 1.0)],
    }
    counts = {name: [training] for name in results}
    counts["unknown"] = [None]
    rows = {
        line.split(" | ")[0][2:]: line.split(" | ")[1:]
        for line in debiasing_sweep.calibration_table(results, "served", counts).splitlines()
        if line.startswith("| ") and not line.startswith("| method")
    }
    assert rows["within"][2] == "yes" and rows["within"][5] == "yes"
    assert rows["label_noise"][2] == "NO" and rows["label_noise"][5] == "yes"
    # The truth's own ratio: 1.3 / 1.05 = 1.238 conversions short of it, outside the labels' 0.2.
    assert rows["label_noise"][6].startswith("1.238–1.238 ✗")
    assert rows["biased"][2] == "yes" and rows["biased"][5] == "NO"
    assert rows["ctr_off"][0].endswith("✗") and rows["ctr_off"][2] == "NO" and rows["ctr_off"][5] == "NO"
    assert rows["unknown"][5] == "?" and rows["unknown"][3].endswith("?")


def test_sweep_modes_span_the_production_sizes_and_run_known_methods():
    from tfcvr import models

    modes = debiasing_sweep.MODES
    full, large = modes["full"], modes["large"]
    sizes = {name: rows for name, (_, rows) in debiasing_sweep.WORLDS.items()}
    assert min(sizes[w] for w in full.worlds) * full.row_fraction == 100_000  # the span of log sizes ...
    assert sizes["large"] * large.row_fraction == 2_000_000 and large.worlds == ("large",)  # ... to 2M rows
    assert len(full.worlds) >= 6 and len(full.day_worlds) >= 2 and set(full.day_worlds) <= set(full.worlds)
    for mode in (full, large):
        assert mode.epochs == 3 and len(mode.seeds) == 3
    for mode in modes.values():
        assert "naive" in mode.methods and set(mode.methods) <= set(models.names())  # naive: the paired base
        assert set(mode.worlds) <= set(debiasing_sweep.WORLDS)


@pytest.mark.slow
def test_sweep_records_every_epoch_as_the_tables_score_it(tmp_path):
    """The per-epoch lines replay selection offline: their validation metrics select the selected epoch again, and
    their test metrics at it are the selected line's; the report's tables ignore these lines."""
    mode = debiasing_sweep.Mode(
        seeds=(0,), epochs=2, row_fraction=0.02, methods=("naive", "esmm"), day_worlds=("default",), days=2
    )
    lines: list = []
    debiasing_sweep.run_world("default", mode, None, str(tmp_path), lines.append, "ctcvr_nll")
    for day, epochs in ((1, 2), (2, 1)):  # a warm-started day trains one epoch
        for method in ("naive", "esmm"):
            runs = [r for r in lines if (r["day"], r["method"]) == (day, method)]
            by_kind = {kind: [r for r in runs if r["epoch_kind"] == kind] for kind in ("first", "every", "selected")}
            assert [len(by_kind[k]) for k in by_kind] == [1, epochs, 1]
            every, (selected,) = by_kind["every"], by_kind["selected"]
            assert [r["epoch"] for r in every] == list(range(1, epochs + 1))
            # The epoch lines' validation metrics are what selection saw: replaying it picks the selected epoch.
            replay = EpochSelection("ctcvr_nll", "min")
            for r in every:
                replay.offer(r["epoch"], r["validation"], lambda: None)
            assert selected["epoch"] == replay.selected.epoch
            # Served alike (the default refit of the same weights on the same training split).
            chosen = every[selected["epoch"] - 1]["test"]
            assert chosen["ctcvr_nll"] == pytest.approx(selected["test"]["ctcvr_nll"], rel=1e-5)
            assert chosen["oracle_cvr_nll"] == pytest.approx(selected["test"]["oracle_cvr_nll"], rel=1e-5)
    debiasing_sweep.report(lines)  # the tables read "first" and "selected" only: one row per method, not per epoch


def _epoch_line(kind, method, epoch, ctcvr_nll, pcoc, oracle, seed=0):
    validation = {
        "ctcvr_nll": ctcvr_nll,
        "cvr_pcoc": pcoc,
        "conversions": 100.0,
        "d_cvr_nll": 0.5,
        "cvr_nll": 0.5,
        "cvr_auc": 0.7,
    }
    return {
        "world": "w",
        "day": None,
        "seed": seed,
        "method": method,
        "epoch_kind": kind,
        "epoch": epoch,
        "validation": validation,
        "test": {"oracle_cvr_nll": oracle, "cvr_pcoc": pcoc},
    }


def test_selection_replay_scores_each_rule_on_the_epochs_it_keeps():
    # naive: epoch 2 best and sound. x: epoch 3 best on ctcvr_nll but 1.5x the conversions of 100 (over 1 + 3/√100
    # and over 1.2x naive's 1.0): a runaway (oracle 0.60 against naive's 0.30); epoch 2 is within both limits.
    naive = [(1, 0.11, 1.0, 0.32), (2, 0.10, 1.0, 0.30)]
    x = [(1, 0.12, 1.1, 0.31), (2, 0.11, 1.25, 0.33), (3, 0.09, 1.5, 0.60)]
    lines = [_epoch_line("every", "naive", *e) for e in naive] + [_epoch_line("every", "x", *e) for e in x]
    lines += [_epoch_line("selected", "naive", *naive[1]), _epoch_line("selected", "x", *x[2])]
    record = selection_replay.replay(lines, ("metric",))
    assert (record["changed"], record["runaways"]) == (0, 1)
    assert record["worst"] == pytest.approx(0.30) and record["mean"] == pytest.approx(0.30)
    guarded = selection_replay.replay(lines, ("z", 3.0))
    assert (guarded["changed"], guarded["runaways"], guarded["worst"]) == (1, 0, pytest.approx(0.03))
    assert selection_replay.replay(lines, ("z", 6.0))["changed"] == 0  # 1 + 6/10 = 1.6: epoch 3 within
    relative = selection_replay.replay(lines, ("naive_ratio", 1.2))  # 1.25 is over 1.2x too: epoch 1
    assert relative["changed"] == 1 and relative["worst"] == pytest.approx(0.01)
    assert [verdict for *_, verdict in guarded["verdicts"]] == ["PASS"]
    assert np.isnan(selection_replay.replay(lines, ("z", 3.0), excluded=("x",))["mean"])  # no method left


def test_entire_space_ctcvr_is_exact_without_intent_and_short_with_it():
    alone = entire_space_ctcvr.world_seed("features_only", 0, row_fraction=0.05)  # no hidden intent
    assert alone["vs_expected"] == pytest.approx(1.0, abs=1e-9) and alone["test_rows"] == 1000
    shared = entire_space_ctcvr.world_seed("strong_intent", 0, row_fraction=0.05)
    assert shared["vs_expected"] < 0.5 and not shared["inside"]  # intent 2: most conversions unexplained
    assert shared["bound"] == pytest.approx(max(0.05, 2 / np.sqrt(shared["conversions"])))  # by hand
    printed = entire_space_ctcvr.table([alone, shared])
    assert printed.count("\n") == 3 and "| strong_intent | 0 | 2 |" in printed
    with pytest.raises(SystemExit):
        entire_space_ctcvr.main(["--worlds", "no_such_world"])
