import os
import subprocess
import sys

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfcvr import export


def _parse(text):
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_several_models_with_policies_and_labels():
    config = _parse(
        export.model_config(
            {"cvr": "/models/cvr", "ctr": "gs://b/ctr"}, latest_versions=2, labels={"cvr": {"stable": 7, "canary": 8}}
        )
    )
    entries = {c.name: c for c in config.model_config_list.config}
    assert entries["cvr"].base_path == "/models/cvr" and entries["ctr"].base_path == "gs://b/ctr"
    assert entries["cvr"].model_platform == "tensorflow"
    assert entries["ctr"].model_version_policy.latest.num_versions == 2
    assert dict(entries["cvr"].version_labels) == {"stable": 7, "canary": 8}
    specific = _parse(export.model_config({"cvr": "/m"}, versions={"cvr": [7, 8]}))
    assert list(specific.model_config_list.config[0].model_version_policy.specific.versions) == [7, 8]


def test_invalid_configs_are_refused():
    with pytest.raises(ValueError, match="At least one model"):
        export.model_config({})
    with pytest.raises(ValueError, match="either latest_versions or versions"):
        export.model_config({"cvr": "/m"}, latest_versions=1, versions={"cvr": [1]})
    with pytest.raises(ValueError, match="not configured"):
        export.model_config({"cvr": "/m"}, labels={"ctr": {"stable": 1}})


def test_command_line(tmp_path):
    out = tmp_path / "models.config"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfcvr.export.model_config",
            "--model=cvr=/models/cvr",
            "--model=ctr=/models/ctr",
            "--label=cvr:stable=12",
            f"--out={out}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    config = _parse(out.read_text())
    assert [c.name for c in config.model_config_list.config] == ["cvr", "ctr"]
    bad = subprocess.run(
        [sys.executable, "-m", "tfcvr.export.model_config", "--model=cvr"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert bad.returncode != 0 and "expected a=b" in bad.stderr
