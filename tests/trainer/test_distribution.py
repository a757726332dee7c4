import json

import pytest

from trainer import distribution

CHIEF_AND_WORKERS = {"cluster": {"chief": ["h0:1"], "worker": ["h1:1", "h2:1"]}, "task": {"type": "chief", "index": 0}}


@pytest.mark.parametrize(
    "config, expected",
    [
        ({}, "default"),
        ({"cluster": {"worker": ["h0:1"]}, "task": {"type": "worker", "index": 0}}, "default"),
        ({"cluster": {"chief": ["h0:1"]}, "task": {"type": "chief", "index": 0}}, "default"),
        ({"cluster": {"worker": ["h0:1", "h1:1"]}, "task": {"type": "worker", "index": 1}}, "multi_worker_mirrored"),
        (CHIEF_AND_WORKERS, "multi_worker_mirrored"),
        (
            {
                "cluster": {"chief": ["h0:1"], "worker": ["h1:1"], "ps": ["h2:1", "h3:1"]},
                "task": {"type": "ps", "index": 1},
            },
            "parameter_server",
        ),
    ],
)
def test_strategy_from_tf_config(config, expected):
    environ = {"TF_CONFIG": json.dumps(config)} if config else {}
    assert distribution.strategy_name(distribution.tf_config(environ)) == expected


def test_flag_overrides_and_is_checked():
    assert distribution.strategy_name(CHIEF_AND_WORKERS, "default") == "default"
    with pytest.raises(ValueError, match="--strategy must be one of"):
        distribution.strategy_name({}, "mirrored_everywhere")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribution.tf_config({"TF_CONFIG": "{cluster"})


def test_vertex_cluster_spec_without_tf_config():
    spec = {
        "cluster": {"workerpool0": ["c:2222"], "workerpool1": ["w0:2222", "w1:2222"], "workerpool2": ["p:2222"]},
        "environment": "cloud",
        "task": {"type": "workerpool1", "index": 1},
    }
    config = distribution.tf_config({"CLUSTER_SPEC": json.dumps(spec)})
    assert config == {
        "cluster": {"chief": ["c:2222"], "worker": ["w0:2222", "w1:2222"], "ps": ["p:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    assert distribution.strategy_name(config) == "parameter_server"
