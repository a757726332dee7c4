import json
import os
import subprocess
import sys

import pytest

from trainer import vertex


def _dry_run(*args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer.vertex",
            "--project=p",
            "--region=europe-west4",
            "--base_output_dir=gs://bucket/run",
            "--dry_run",
            *args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        timeout=120,
    )


def test_dry_run_job_spec_for_multi_worker_with_parameter_servers():
    result = _dry_run(
        "--image_uri=gcr.io/p/tfcvr:1",
        "--replicas=3",
        "--num_ps=2",
        "--machine_type=n1-standard-16",
        "--ps_machine_type=n1-highmem-8",
        "--service_account=sa@p.iam.gserviceaccount.com",
        "--",
        "--model=chorus",
        "--train_files=gs://bucket/train-*",
        "--epochs=2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    job = json.loads(result.stdout)
    assert job["displayName"].startswith("tfcvr-chorus-")
    spec = job["jobSpec"]
    assert spec["baseOutputDirectory"]["outputUriPrefix"] == "gs://bucket/run"
    assert spec["serviceAccount"] == "sa@p.iam.gserviceaccount.com"
    chief, workers, ps = spec["workerPoolSpecs"]
    assert [int(p["replicaCount"]) for p in (chief, workers, ps)] == [1, 2, 2]
    assert chief["machineSpec"]["machineType"] == "n1-standard-16"
    assert ps["machineSpec"]["machineType"] == "n1-highmem-8"
    for pool in (chief, workers, ps):
        container = pool["containerSpec"]
        assert container["imageUri"] == "gcr.io/p/tfcvr:1"
        assert container["command"] == ["python", "-m", "trainer.task"]
        assert container["args"] == ["--model=chorus", "--train_files=gs://bucket/train-*", "--epochs=2"]


def test_the_default_is_the_trainer_container_the_docs_push():
    result = _dry_run("--", "--model=esmm")
    assert result.returncode == 0, result.stderr[-2000:]
    (pool,) = json.loads(result.stdout)["jobSpec"]["workerPoolSpecs"]
    assert pool["containerSpec"]["imageUri"] == "europe-west4-docker.pkg.dev/p/tfcvr/trainer:0.1.0"
    docs = open("docs/distributed.md").read()
    assert f"docker push {vertex.default_image_uri('PROJECT', 'europe-west4')}" in docs  # the docs' build/push tag


def test_python_package_needs_an_executor_image_with_tfcvrs_tensorflow():
    package_uri = "--package_uri=gs://bucket/tfcvr-0.1.0.tar.gz"
    prebuilt = "us-docker.pkg.dev/vertex-ai/training/tf-cpu.2-17.py310:latest"
    with pytest.raises(ValueError, match=r"has TensorFlow 2.17, but tfcvr requires tensorflow<2.22,>=2.21"):
        vertex.worker_pool_specs([], package_uri="gs://b/t.tar.gz", executor_image_uri=prebuilt)
    vertex.check_executor_image(prebuilt.replace("2-17.py310", "2-21.py311"))  # a TensorFlow tfcvr accepts
    custom = "--executor_image_uri=europe-west4-docker.pkg.dev/p/base/python-tf:2.21"  # not a prebuilt image
    result = _dry_run(package_uri, custom, "--", "--model=ukd")
    assert result.returncode == 0, result.stderr[-2000:]
    pools = json.loads(result.stdout)["jobSpec"]["workerPoolSpecs"]
    assert len(pools) == 1 and int(pools[0]["replicaCount"]) == 1
    package = pools[0]["pythonPackageSpec"]
    assert package["pythonModule"] == "trainer.task" and package["packageUris"] == ["gs://bucket/tfcvr-0.1.0.tar.gz"]
    assert package["args"] == ["--model=ukd"] and package["executorImageUri"] == custom.split("=", 1)[1]


def test_invalid_job_shapes():
    with pytest.raises(ValueError, match="exactly one of --image_uri"):
        vertex.worker_pool_specs([], image_uri="a", package_uri="b")
    with pytest.raises(ValueError, match="at least one worker besides the chief"):
        vertex.worker_pool_specs([], replicas=1, num_ps=1, image_uri="a")
    with pytest.raises(ValueError, match="gs:// folder"):
        vertex.custom_job("x", vertex.worker_pool_specs([], image_uri="a"), "/local/dir")
    with pytest.raises(ValueError, match="exactly one of --image_uri"):
        vertex.worker_pool_specs([])
    with pytest.raises(ValueError, match="with a container give only --image_uri"):
        vertex.worker_pool_specs([], image_uri="a", executor_image_uri="b")
