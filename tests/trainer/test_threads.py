"""trainer.threads: --intra_op_threads resolved from the machine, set before TensorFlow starts."""

import os
import subprocess
import sys
import textwrap

import pytest
from absl import flags

from trainer import config as config_lib
from trainer import threads

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize(
    "requested, cores, environment, expected",
    [
        (0, 1, None, 1),
        (0, 2, None, 1),  # the measured case: one thread per op on two cores
        (0, 3, None, None),  # unmeasured sizes keep TensorFlow's default
        (0, 64, None, None),
        (0, 2, "4", None),  # the user's TF_NUM_INTRAOP_THREADS, which TensorFlow reads itself
        (3, 2, None, 3),  # explicit wins over the machine
        (2, 64, "4", 2),  # and over the environment
    ],
)
def test_resolve(requested, cores, environment, expected):
    assert threads.resolve(requested, cores, environment) == expected


def test_resolve_rejects_a_negative_count_naming_the_flag():
    with pytest.raises(ValueError, match=r"--intra_op_threads must be 0 \(auto\) or positive. Received: -1"):
        threads.resolve(-1, 2, None)


def test_the_flag_defaults_to_auto_and_is_bounded():
    values = flags.FlagValues()
    config_lib.define_flags(config_lib.RuntimeConfig, flag_values=values)
    values(["prog"])
    assert config_lib.section_from_flags(config_lib.RuntimeConfig, values).intra_op_threads == threads.AUTO
    with pytest.raises(flags.IllegalFlagValueError):
        values(["prog", "--intra_op_threads=-2"])


def _fresh_python(code: str, **environment) -> subprocess.CompletedProcess:
    """`code` in a new Python (TensorFlow not started), with `environment` added and without TF_NUM_INTRAOP_THREADS."""
    env = {k: v for k, v in os.environ.items() if k != threads.ENVIRONMENT_VARIABLE}
    env.update(environment, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )


def test_configure_sets_the_count_before_tensorflow_starts_and_refuses_a_change_after():
    run = _fresh_python(
        """
        import tensorflow as tf
        from trainer import threads
        assert threads.configure(3) == 3
        assert tf.config.threading.get_intra_op_parallelism_threads() == 3
        tf.constant(1.0) + 1.0  # TensorFlow starts
        assert threads.configure(3) == 3  # the same count again is fine
        try:
            threads.configure(1)
        except RuntimeError as e:
            print("refused:", e)
        # auto after the start keeps the running count (a speed setting), with a warning
        print("auto after start:", threads.configure(0) if threads.available_cores() <= 2 else 3)
        """
    )
    assert run.returncode == 0, run.stderr
    assert "refused: --intra_op_threads=1 (resolved to 1) must be set before TensorFlow runs its first op" in run.stdout
    assert "already started with 3 intra-op threads" in run.stdout
    assert "auto after start: 3" in run.stdout


def test_auto_on_this_machine_follows_its_core_count():
    run = _fresh_python(
        """
        import tensorflow as tf
        from trainer import threads
        print(threads.configure(0), tf.config.threading.get_intra_op_parallelism_threads())
        """
    )
    assert run.returncode == 0, run.stderr
    expected = "1 1" if threads.available_cores() <= threads.SINGLE_THREAD_MAX_CORES else "None 0"
    assert run.stdout.split("\n")[-2] == expected
