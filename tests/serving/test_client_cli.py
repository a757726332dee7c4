import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import tiny_row, write_rows
from tfcvr.data import schema as schema_lib

# End-to-end: subprocesses, clusters or training to a bar; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow

ROWS = [tiny_row(user_id=i, item_cat=f"c{i}", price=float(i)) for i in range(3)]


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "serving.client", "--timeout=10", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        timeout=120,
    )


def test_scores_jsonl_and_tfrecord_over_grpc_and_rest(served, tmp_path):
    schema = tmp_path / "schema.json"
    schema_lib.save_schema(served["schema"], str(schema))
    jsonl = tmp_path / "candidates.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    tfrecord = write_rows(tmp_path / "candidates.tfrecord", ROWS)
    results = []
    for args in (
        [f"--server={served['grpc']}", f"--input={jsonl}"],
        [f"--server={served['rest']}", "--protocol=rest", f"--input={tfrecord}"],
        [f"--server={served['grpc']}", "--signature=predict", f"--schema={schema}", f"--input={jsonl}", "--version=1"],
    ):
        result = _run("--model=cvr", "--json", *args)
        assert result.returncode == 0, result.stderr[-2000:]
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [line["candidate"] for line in lines] == [0, 1, 2]
        results.append([line["ctcvr"] for line in lines])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)
    assert not np.allclose(results[0], results[2])  # version 1 is another model
    table = _run(f"--server={served['grpc']}", "--model=cvr", f"--input={jsonl}")
    assert table.returncode == 0 and table.stdout.splitlines()[0].split() == ["candidate", "ctr", "cvr", "ctcvr"]


def test_errors_name_the_problem(served, tmp_path):
    bad_line = tmp_path / "bad.jsonl"
    bad_line.write_text('{"user_id": 1}\nnot json\n')
    result = _run(f"--server={served['grpc']}", "--model=cvr", f"--input={bad_line}")
    assert result.returncode != 0 and f"{bad_line}:2: invalid JSON line" in result.stderr
    result = _run(f"--server={served['grpc']}", "--model=cvr", "--signature=predict", f"--input={bad_line}")
    assert result.returncode != 0 and "--signature=predict needs --schema" in result.stderr
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"user_id": 1, "price": 2.0}\n')
    result = _run(f"--server={served['grpc']}", "--model=cvr", f"--input={missing}")
    assert result.returncode == 1 and "INVALID_ARGUMENT" in result.stderr and "item_cat" in result.stderr
