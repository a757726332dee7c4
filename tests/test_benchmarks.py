"""The speed benchmarks' plumbing: the official DDPO column is skipped with a reason, its data and timer are right."""

import stat
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import official_ddpo  # noqa: E402
import step_times  # noqa: E402
import throughput  # noqa: E402


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
