import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcvr import models
from tfcvr.data import TFRecordPipeline
from trainer.loop import TrainingLoop


def _model(schema, name="esmm"):
    model = models.build(name, schema, embedding_dim=4, hidden_units=(8,), tower_units=(4,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def test_resumes_from_checkpoint_with_weights_and_optimizer_state(simulated, tmp_path):
    schema = simulated["schema_obj"]
    pipeline = TFRecordPipeline(simulated["train"], schema, 400)
    strategy = tf.distribute.get_strategy()
    first = _model(schema)
    loop = TrainingLoop(first, strategy, str(tmp_path), log_every=3, checkpoint_every=4)
    assert loop.train(lambda c, epoch: pipeline.dataset(), epochs=1, global_batch_size=400)["steps"] == 6
    assert loop.checkpoints.latest_checkpoint.endswith("ckpt-6")

    second = _model(schema)
    resumed = TrainingLoop(second, strategy, str(tmp_path))
    assert resumed.restore() and int(resumed.global_step) == 6 and int(resumed.epoch) == 1
    for a, b in zip(first.variables, second.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(second.optimizer.iterations.numpy()) == 6
    # Already at epoch 1 of 1: nothing left to train; one more epoch trains 6 more steps.
    assert resumed.train(lambda c, epoch: pipeline.dataset(), epochs=1, global_batch_size=400)["steps"] == 0
    assert resumed.train(lambda c, epoch: pipeline.dataset(), epochs=2, global_batch_size=400)["steps"] == 6


def test_checkpoint_of_another_model_is_rejected(simulated, tmp_path):
    schema = simulated["schema_obj"]
    pipeline = TFRecordPipeline(simulated["train"], schema, 400)
    TrainingLoop(_model(schema), tf.distribute.get_strategy(), str(tmp_path)).train(
        lambda c, epoch: pipeline.dataset().take(1), epochs=1, global_batch_size=400
    )
    other = models.build("naive", schema, embedding_dim=8, hidden_units=(8,), tower_units=(4,))
    other.compile(optimizer=keras.optimizers.Adam())
    with pytest.raises(ValueError, match="does not match this model"):
        TrainingLoop(other, tf.distribute.get_strategy(), str(tmp_path)).restore()


def test_steps_per_epoch_repeats_data(simulated, tmp_path):
    schema = simulated["schema_obj"]
    pipeline = TFRecordPipeline(simulated["train"], schema, 400)
    loop = TrainingLoop(_model(schema), tf.distribute.get_strategy(), str(tmp_path))
    result = loop.train(
        lambda c, epoch: pipeline.dataset(epochs=None), epochs=2, global_batch_size=400, steps_per_epoch=9
    )
    assert result["steps"] == 18


def test_staged_model_runs_its_stages_in_order_and_resumes_in_the_student_stage(simulated, tmp_path):
    schema = simulated["schema_obj"]
    pipeline = TFRecordPipeline(simulated["train"], schema, 400)
    strategy = tf.distribute.get_strategy()
    teacher_only = _model(schema, "ukd")
    # No student epochs asked: only the teacher stage runs (6 steps), then a checkpoint at epoch 1.
    loop = TrainingLoop(teacher_only, strategy, str(tmp_path), log_every=3)
    assert loop.train(lambda c, epoch: pipeline.dataset(), epochs=0, global_batch_size=400)["steps"] == 6
    trained_teacher = [v.numpy() for v in teacher_only.teacher.variables]

    # A restarted job restores the teacher and runs only the student stage.
    resumed_model = _model(schema, "ukd")
    resumed = TrainingLoop(resumed_model, strategy, str(tmp_path), log_every=3)
    result = resumed.train(lambda c, epoch: pipeline.dataset(), epochs=1, global_batch_size=400)
    assert result["steps"] == 6 and "cvr_unclick_loss" in result and "discriminator_loss" not in result
    for before, after in zip(trained_teacher, resumed_model.teacher.variables):
        np.testing.assert_array_equal(before, after.numpy())
    assert int(resumed_model.teacher_optimizer.iterations.numpy()) == 6
    assert int(resumed_model.optimizer.iterations.numpy()) == 6


def test_checkpoints_hold_every_variable_by_path(simulated, tmp_path):
    schema = simulated["schema_obj"]
    pipeline = TFRecordPipeline(simulated["train"], schema, 400)
    trained = _model(schema, "dr_jl")
    TrainingLoop(trained, tf.distribute.get_strategy(), str(tmp_path)).train(
        lambda c, epoch: pipeline.dataset().take(2), epochs=1, global_batch_size=400
    )
    # A model without any optimizer (evaluation, export) restores every weight, sub-layers' included.
    fresh = models.build("dr_jl", schema, embedding_dim=4, hidden_units=(8,), tower_units=(4,))
    tf.train.Checkpoint(weights=fresh.weights_by_path()).restore(
        tf.train.latest_checkpoint(str(tmp_path))
    ).expect_partial().assert_existing_objects_matched()
    assert len(fresh.variables) > 10
    for a, b in zip(trained.variables, fresh.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("name", ["ddpo", "dr_jl", "ukd"])
def test_steps_per_execution_trains_exactly_as_one_step_per_call(name, simulated, tmp_path):
    """Several steps per tf.function call: same weights, loss terms and checkpoints as one step per call."""
    schema = simulated["schema_obj"]
    pipeline = TFRecordPipeline(simulated["train"], schema, 400)  # 6 batches per epoch
    runs = []
    for steps_per_execution in (1, 4):
        keras.utils.set_random_seed(0)
        model = models.build(name, schema, embedding_dim=4, hidden_units=(8,), tower_units=(4,), dropout=0.2)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        loop = TrainingLoop(
            model,
            tf.distribute.get_strategy(),
            str(tmp_path / str(steps_per_execution)),
            log_every=5,
            checkpoint_every=7,
            steps_per_execution=steps_per_execution,
        )
        result = loop.train(lambda c, epoch: pipeline.dataset(epoch_index=epoch), epochs=2, global_batch_size=400)
        checkpoints = [path.rsplit("/", 1)[-1] for path in loop.checkpoints.checkpoints]
        runs.append((result, [v.numpy() for v in model.variables], checkpoints))
    (one, one_weights, one_checkpoints), (four, four_weights, four_checkpoints) = runs
    assert one["steps"] == four["steps"] == (18 if name == "ukd" else 12)  # UKD: a teacher epoch first
    assert one_checkpoints == four_checkpoints
    for a, b in zip(one_weights, four_weights):
        np.testing.assert_array_equal(a, b)
    terms = [key for key in one if key not in ("steps", "seconds", "examples_per_second")]
    assert terms and set(terms) == set(four) - {"steps", "seconds", "examples_per_second"}
    for key in terms:
        np.testing.assert_allclose(four[key], one[key], rtol=1e-6)


def test_steps_per_execution_with_fixed_steps_per_epoch(simulated, tmp_path):
    schema = simulated["schema_obj"]
    pipeline = TFRecordPipeline(simulated["train"], schema, 400)
    loop = TrainingLoop(
        _model(schema),
        tf.distribute.get_strategy(),
        str(tmp_path),
        log_every=100,
        checkpoint_every=100,
        steps_per_execution=4,
    )
    result = loop.train(
        lambda c, epoch: pipeline.dataset(epochs=None), epochs=2, global_batch_size=400, steps_per_epoch=9
    )
    assert result["steps"] == 18 and int(loop.global_step.numpy()) == 18
    assert int(loop.model.optimizer.iterations.numpy()) == 18


def test_steps_per_execution_must_be_positive(simulated, tmp_path):
    with pytest.raises(ValueError, match="`steps_per_execution` must be positive"):
        TrainingLoop(
            _model(simulated["schema_obj"]), tf.distribute.get_strategy(), str(tmp_path), steps_per_execution=0
        )


def test_a_non_finite_loss_stops_training_with_the_step_and_terms(simulated, tmp_path, monkeypatch):
    schema = simulated["schema_obj"]
    model = _model(schema)
    original = type(model).objective

    def diverging(self, labels, predictions):
        terms = original(self, labels, predictions)
        return {**terms, "loss": terms["loss"] / 0.0}

    monkeypatch.setattr(type(model), "objective", diverging)
    pipeline = TFRecordPipeline(simulated["train"], schema, 400)
    loop = TrainingLoop(model, tf.distribute.get_strategy(), str(tmp_path), log_every=3)
    # The first step's NaN gradients make every later term NaN too.
    with pytest.raises(
        FloatingPointError,
        match=r"esmm diverged in stage 'train' by step 3: loss term\(s\) "
        r"\['ctcvr_loss', 'ctr_loss', 'loss'\] are not finite",
    ):
        loop.train(lambda c, epoch: pipeline.dataset(), epochs=1, global_batch_size=400)
