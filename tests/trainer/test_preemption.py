"""Preemption: SIGTERM during training writes a checkpoint and stops; the restarted run ends as an uninterrupted one."""

import os
import random
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcvr import models
from tfcvr.data import TFRecordPipeline
from trainer.loop import TrainingLoop
from trainer.preemption import PREEMPTED_EXIT_STATUS, Preempted, TerminationWatcher

EPOCHS, BATCH = 2, 400  # the simulated fixture's 2,400 training records: 6 steps per epoch


def test_the_exit_status_is_the_terminated_status_schedulers_restart():
    assert PREEMPTED_EXIT_STATUS == 143


def test_sigterm_is_recorded_while_watching_and_the_previous_handler_comes_back():
    previous = signal.getsignal(signal.SIGTERM)
    watcher = TerminationWatcher(tf.distribute.get_strategy())  # handles the signal by default
    with watcher:
        assert not watcher.requested()
        os.kill(os.getpid(), signal.SIGTERM)  # would end the test process without the watcher
        assert watcher.requested()
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_signal_after_the_last_check_reaches_the_previous_handler_at_exit():
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with TerminationWatcher(tf.distribute.get_strategy()):
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. during the last epoch's evaluation: never checked
            assert received == []
        assert received == [signal.SIGTERM]  # delivered, so the process ends as it would have without the watcher
    finally:
        signal.signal(signal.SIGTERM, previous)


def _model(schema):
    keras.utils.set_random_seed(0)
    model = models.build("esmm", schema, embedding_dim=4, hidden_units=(8,), tower_units=(4,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def _loop(model, checkpoint_dir):
    # Checkpoints only per epoch and on preemption: a resumed run may not lean on a scheduled one.
    return TrainingLoop(
        model,
        tf.distribute.get_strategy(),
        checkpoint_dir,
        log_every=10**6,
        checkpoint_every=10**6,
        steps_per_execution=2,
    )


def _train(loop, pipeline):
    return loop.train(lambda context, epoch: pipeline.dataset(epoch_index=epoch), EPOCHS, BATCH)


def _preempt_after(loop, calls):
    """Makes the loop receive a termination request during its `calls`-th tf.function call."""
    execute, count = loop._execute, [0]

    def counted(*args):
        result = execute(*args)
        count[0] += 1
        if count[0] == calls:
            loop.termination.request()
        return result

    loop._execute = counted


def test_a_loop_preempted_twice_ends_with_the_uninterrupted_weights(simulated, tmp_path):
    schema = simulated["schema_obj"]
    pipeline = TFRecordPipeline(simulated["train"], schema, BATCH, shuffle=True, seed=3)
    reference = _model(schema)
    _train(_loop(reference, str(tmp_path / "reference")), pipeline)

    checkpoint_dir = str(tmp_path / "preempted")
    stops = []
    for calls in random.Random(0).sample(range(1, 4), 2):  # each run's calls: the first traces one step alone
        loop = _loop(_model(schema), checkpoint_dir)
        _preempt_after(loop, calls)
        with pytest.raises(Preempted) as stopped:
            _train(loop, pipeline)
        assert stopped.value.checkpoint.endswith(f"ckpt-{stopped.value.step}")
        assert tf.train.latest_checkpoint(checkpoint_dir) == stopped.value.checkpoint
        stops.append(stopped.value.step)
    assert stops[0] < stops[1] < EPOCHS * 6  # each resumed run went on from where the last one stopped
    model = _model(schema)
    result = _train(_loop(model, checkpoint_dir), pipeline)
    assert result["steps"] == EPOCHS * 6 - stops[1]
    for expected, variable in zip(reference.variables, model.variables, strict=True):
        np.testing.assert_array_equal(variable.numpy(), expected.numpy(), err_msg=variable.path)
    assert int(model.optimizer.iterations.numpy()) == EPOCHS * 6
