"""The trainer image's Dockerfile: what can be checked without a Docker engine (none runs on the build machines)."""

import json
import os
import re
import subprocess
import sys

from trainer import vertex


def _instructions():
    """[(instruction, argument)] of the Dockerfile, continuation lines joined."""
    text = open("Dockerfile").read().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [tuple(line.split(None, 1)) for line in lines]


def test_base_user_install_and_entrypoint():
    instructions = _instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [argument for instruction, argument in instructions if instruction == "USER"]
    assert users and users[-1] not in ("root", "0")
    entrypoint = [json.loads(argument) for instruction, argument in instructions if instruction == "ENTRYPOINT"]
    assert entrypoint == [["python", "-m", "trainer.task"]]
    # The install command is README's (pip install . from the repository), with the extra trainer.task uses under
    # Vertex AI (hyperparameter tuning reports), run before the user switch.
    runs = [argument for instruction, argument in instructions if instruction == "RUN"]
    install = next(run for run in runs if "pip install" in run)
    assert re.search(r'pip install "\.\[vertex\]"(\s|$)', install)
    assert "pip install ." in open("README.md").read().split("<!-- test-command")[0]
    assert instructions.index(("RUN", install)) < instructions.index(("USER", users[-1]))
    ignored = [line.strip() for line in open(".dockerignore") if line.strip() and not line.startswith("#")]
    for needed in ("setup.py", "README.md", "tfcvr", "trainer", "serving"):
        assert needed not in ignored and os.path.exists(needed)


def test_the_entrypoint_accepts_the_arguments_trainer_vertex_passes():
    trainer_args = ["--model=chorus", "--train_files=gs://b/train-*", "--eval_files=gs://b/eval-*"]
    trainer_args += ["--schema=gs://b/schema.json", "--epochs=2", "--warm_start_from=gs://b/yesterday"]
    (pool,) = vertex.worker_pool_specs(trainer_args, image_uri=vertex.default_image_uri("p", "us-central1"))
    container = pool.container_spec
    assert list(container.command) == json.loads(dict(_instructions())["ENTRYPOINT"])
    # The module parses exactly those arguments (absl refuses unknown flags): checked without running the job.
    check = (
        "import sys; from absl import flags; import trainer.task; "
        "flags.FLAGS(['trainer.task', *sys.argv[1:]]); print(flags.FLAGS.model, flags.FLAGS.warm_start_from)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check, *container.args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["chorus", "gs://b/yesterday"]
