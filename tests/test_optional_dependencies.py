"""The base install trains, evaluates and exports; each extra's feature fails in one line naming its pip command."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import TINY_SCHEMA
from tfcvr import optional

# End-to-end: subprocesses, clusters or training to a bar; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What only the extras install: blocked in a child interpreter, as if `pip install .` had left them out.
EXTRA_MODULES = ("matplotlib", "pyarrow", "google.cloud.aiplatform", "google.cloud.aiplatform_v1", "hypertune")
# A finder first on sys.meta_path that reports them missing (as an uninstalled package is: absent from sys.modules).
BLOCK = """import importlib.abc, sys
class _Uninstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == m or name.startswith(m + ".") for m in {modules!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Uninstalled())
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK.format(modules=EXTRA_MODULES) + code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_require_names_the_feature_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(
        optional.MissingDependencyError, match=r'Drawing a plot needs matplotlib .*pip install "tfcvr\[plots\]"'
    ):
        optional.require("matplotlib", "Drawing a plot")


def test_every_extra_module_is_in_an_extra_of_setup_py():
    text = open(os.path.join(ROOT, "setup.py")).read()
    for extra, package in set(optional.EXTRAS.values()):
        assert f'"{extra}": [' in text and f'"{package}>=' in text


def test_the_base_install_imports_every_command_without_the_extras():
    result = _python(
        "import tfcvr, serving, trainer.task, trainer.benchmark, trainer.evaluate, trainer.compare, trainer.vertex\n"
        "import tfcvr.data.convert.cli\nprint('ok')"
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def _command(module: str) -> str:
    return f"import runpy\nsys.argv = [{module!r}, *sys.argv[1:]]\nrunpy.run_module({module!r}, run_name='__main__')"


@pytest.mark.parametrize(
    "module, args, extra",
    [
        ("trainer.vertex", ["--project=p", "--base_output_dir=gs://b/o", "--dry_run"], "vertex"),
        ("trainer.evaluate", ["--export_dir={tmp}", "--eval_files={tmp}/*", "--schema={schema}"], "plots"),
    ],
)
def test_a_feature_of_a_missing_extra_fails_in_one_line_before_any_work(module, args, extra, tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(TINY_SCHEMA))
    result = _python(_command(module), *(a.format(tmp=tmp_path, schema=schema) for a in args))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if f"{module}: error: " in line]
    assert len(lines) == 1 and f'pip install "tfcvr[{extra}]"' in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_the_leaderboard_without_plots_says_so_before_training_and_writes_the_rest(tmp_path):
    out = tmp_path / "board"
    args = ["--models=naive", "--runs=1", "--sim_rows=2000", "--batch_size=256", f"--output_dir={out}"]
    result = _python(_command("trainer.benchmark"), *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'The leaderboard will not draw plots/: matplotlib is not installed (pip install "tfcvr[plots]")' in (
        result.stderr
    )
    assert (out / "leaderboard.md").exists() and not os.listdir(out / "plots")


def test_reporting_to_a_tuning_job_without_hypertune_fails_before_training(tmp_path):
    code = "import os, runpy\nos.environ['CLOUD_ML_TRIAL_ID'] = '3'\nsys.argv = ['trainer.task', *sys.argv[1:]]\n"
    code += "runpy.run_module('trainer.task', run_name='__main__')"
    result = _python(code, "--sim_rows=2000", f"--model_dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'pip install "tfcvr[vertex]"' in result.stderr and not (tmp_path / "run").exists()
