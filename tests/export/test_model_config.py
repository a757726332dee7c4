import os
import subprocess
import sys

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfcvr.export import model_config


def _parse(text):
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_several_models_with_policies_and_labels():
    config = _parse(
        model_config.model_config(
            {"cvr": "/models/cvr", "ctr": "gs://b/ctr"}, latest_versions=2, labels={"cvr": {"stable": 7, "canary": 8}}
        )
    )
    entries = {c.name: c for c in config.model_config_list.config}
    assert entries["cvr"].base_path == "/models/cvr" and entries["ctr"].base_path == "gs://b/ctr"
    assert entries["cvr"].model_platform == "tensorflow"
    assert entries["ctr"].model_version_policy.latest.num_versions == 2
    assert dict(entries["cvr"].version_labels) == {"stable": 7, "canary": 8}
    specific = _parse(model_config.model_config({"cvr": "/m"}, versions={"cvr": [7, 8]}))
    assert list(specific.model_config_list.config[0].model_version_policy.specific.versions) == [7, 8]


def test_invalid_configs_are_refused():
    with pytest.raises(ValueError, match="At least one model"):
        model_config.model_config({})
    with pytest.raises(ValueError, match="one version policy"):
        model_config.model_config({"cvr": "/m"}, latest_versions=1, versions={"cvr": [1]})
    with pytest.raises(ValueError, match="not configured"):
        model_config.model_config({"cvr": "/m"}, labels={"ctr": {"stable": 1}})


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


def test_all_versions_policy_label_moves_and_monitoring(tmp_path):
    text = model_config.model_config({"cvr": "/models/cvr"}, labels={"cvr": {"stable": 3}}, all_versions=True)
    entry = _parse(text).model_config_list.config[0]
    assert entry.model_version_policy.WhichOneof("policy_choice") == "all"
    moved = _parse(model_config.set_labels(text, {"cvr": {"stable": 4, "canary": 5}}))
    assert dict(moved.model_config_list.config[0].version_labels) == {"stable": 4, "canary": 5}
    assert model_config.labelled_versions(model_config.set_labels(text, {"cvr": {"canary": 5}})) == {3, 5}
    with pytest.raises(ValueError, match="does not list"):
        model_config.set_labels(text, {"ctr": {"stable": 1}})
    specific = model_config.model_config({"cvr": "/m"}, versions={"cvr": [7, 8]})
    with pytest.raises(ValueError, match=r"serves only versions \[7, 8\]"):
        model_config.set_labels(specific, {"cvr": {"stable": 9}})
    with pytest.raises(ValueError, match="one version policy"):
        model_config.model_config({"cvr": "/m"}, latest_versions=2, all_versions=True)
    with pytest.raises(ValueError, match="not a text-format ModelServerConfig"):
        model_config.parse_model_config("model_config_list { config { nme: 'x' } }")
    assert model_config.monitoring_config() == (
        'prometheus_config {\n  enable: true\n  path: "/monitoring/prometheus/metrics"\n}\n'
    )


def test_update_moves_a_label_in_place(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(model_config.model_config({"cvr": "/models/cvr"}, labels={"cvr": {"stable": 3}}, all_versions=True))
    command = [sys.executable, "-m", "tfcvr.export.model_config", f"--update={path}", "--label=cvr:stable=2"]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning" not in result.stderr  # the package does not import the module run with -m
    assert dict(_parse(path.read_text()).model_config_list.config[0].version_labels) == {"stable": 2}
    assert os.listdir(tmp_path) == ["models.config"]  # the temporary file was renamed over it
