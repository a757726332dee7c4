"""Warm start: a model seeded from a checkpoint or an export by weight path, strict or partial."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, small_model, tiny_features
from tfcvr import export, models
from tfcvr.data import schema as schema_lib
from tfcvr.export import weights_manifest
from trainer import model_identity, warm_start
from trainer.loop import TrainingLoop


def _seeded(name, seed, **kwargs):
    keras.utils.set_random_seed(seed)
    return small_model(name, tower_units=(4, 2), **kwargs)  # two tower layers: EVI's default vie_layers


def _checkpoint(model, model_dir, method=None):
    """A TrainingLoop checkpoint of `model` in <model_dir>/checkpoints (with its identity, as trainer.task writes)."""
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    identity = model_identity.model_identity(method or model.name, model.get_config())
    model_identity.check_or_record(checkpoint_dir, identity, write=True)
    TrainingLoop(model, tf.distribute.get_strategy(), checkpoint_dir).checkpoints.save(checkpoint_number=7)
    return checkpoint_dir


def _assert_same_weights(a, b, paths=None):
    wa, wb = a.weights_by_path(), b.weights_by_path()
    for path in paths or wa:
        np.testing.assert_array_equal(wa[path].numpy(), wb[path].numpy(), err_msg=path)


# Checkpoints for every registered method; the export path (one manifest for all) for a single- and a two-stage
# method and one with a second optimizer.
@pytest.mark.parametrize("name", models.names())
def test_every_method_starts_from_a_checkpoint_of_itself(name, tmp_path):
    source = _seeded(name, 1)
    _checkpoint(source, str(tmp_path / "day1"))
    target = _seeded(name, 2)
    first_trainable = source.trainable_variables[0].path  # seeded differently: the weights to restore differ
    assert not np.array_equal(
        source.weights_by_path()[first_trainable].numpy(), target.weights_by_path()[first_trainable].numpy()
    )
    resolved = warm_start.resolve(str(tmp_path / "day1"))  # a model_dir: its newest checkpoint
    assert resolved.kind == "checkpoint" and resolved.path.endswith("ckpt-7")
    report = warm_start.warm_start(target, resolved)
    learned = [path for path in target.weights_by_path() if not warm_start.is_refitted(path)]
    assert report["restored"] == len(learned) and report["initialized"] == report["ignored"] == []
    _assert_same_weights(source, target)
    np.testing.assert_allclose(
        target(tiny_features(), training=False)["cvr"], source(tiny_features(), training=False)["cvr"], rtol=1e-6
    )


@pytest.mark.parametrize("name", ["esmm", "ukd", "dr_jl"])
def test_starts_from_an_export_version_or_base(name, tmp_path):
    source = _seeded(name, 1)
    base = str(tmp_path / "export")
    version = export.export_for_serving(source, schema_lib.Schema.from_dict(TINY_SCHEMA), base, version=5)
    manifest = json.loads(tf.io.gfile.GFile(os.path.join(version, weights_manifest.MANIFEST_FILE)).read())
    assert set(manifest["weights"]) == set(source.weights_by_path())
    for given in (version, base):
        target = _seeded(name, 2)
        resolved = warm_start.resolve(given)
        assert resolved == warm_start.WarmStartSource(given, "export", version)
        warm_start.warm_start(target, resolved)
        _assert_same_weights(source, target)


def test_a_mismatch_is_an_error_listing_it_and_partial_keeps_initial_values(tmp_path):
    source = _seeded("esmm", 1, embedding_dim=8)
    _checkpoint(source, str(tmp_path / "day1"))
    target = _seeded("esmm", 2, embedding_dim=4)
    before = {path: v.numpy() for path, v in target.weights_by_path().items()}
    resolved = warm_start.resolve(str(tmp_path / "day1" / "checkpoints"))
    with pytest.raises(warm_start.WarmStartError) as error:
        warm_start.warm_start(target, resolved)
    message = str(error.value)
    assert "3 with another shape" in message and "--warm_start_partial" in message
    assert "feature_embedding/user_id_embedding/embeddings [50, 8] -> [50, 4]" in message
    assert "backbone/bottom/dense_0/kernel" in message  # its input width follows the embeddings
    for path, value in target.weights_by_path().items():  # nothing assigned before the error
        np.testing.assert_array_equal(value.numpy(), before[path])

    report = warm_start.warm_start(target, resolved, partial=True)
    reshaped = {line.split(" ")[0] for line in report["initialized"]}
    assert reshaped == {
        "feature_embedding/user_id_embedding/embeddings",
        "feature_embedding/item_cat_embedding/embeddings",
        "backbone/bottom/dense_0/kernel",
    }
    assert report["restored"] == len(before) - 3 - 2 and report["ignored"] == []  # 2: the served intercepts
    for path, value in target.weights_by_path().items():
        expected = before[path] if path in reshaped else source.weights_by_path()[path].numpy()
        np.testing.assert_array_equal(value.numpy(), expected, err_msg=path)


def test_another_method_lists_missing_and_extra_weights(tmp_path):
    _checkpoint(_seeded("esmm", 1), str(tmp_path / "esmm"))
    target = _seeded("dcmt", 2)  # its counterfactual CVR tower is not in esmm
    resolved = warm_start.resolve(str(tmp_path / "esmm"))
    with pytest.raises(warm_start.WarmStartError, match="missing from the source"):
        warm_start.warm_start(target, resolved)
    report = warm_start.warm_start(target, resolved, partial=True)
    missing = set(target.weights_by_path()) - set(_seeded("esmm", 3).weights_by_path())
    assert missing and set(report["initialized"]) == missing


def test_optimizer_state_from_a_same_method_checkpoint_keeps_the_new_learning_rate(tmp_path):
    source = _seeded("ukd", 1)
    data = (tiny_features(), {"click": tf.constant([1, 0, 1, 0], tf.int64), "conversion": tf.constant([1, 0, 0, 0])})
    for stage, _ in source.training_stages(1):
        source.stage_step(stage)(data)  # both optimizers step: the teacher's, then the student's
    _checkpoint(source, str(tmp_path / "day1"), method="ukd")
    target = _seeded("ukd", 2)
    target.optimizer.learning_rate = 0.5
    resolved = warm_start.resolve(str(tmp_path / "day1"))
    warm_start.warm_start(target, resolved, optimizer_state=True, method="ukd")
    for restored, original in zip(target.optimizers(), source.optimizers(), strict=True):
        assert int(restored.iterations.numpy()) == int(original.iterations.numpy()) == 1
        for a, b in zip(restored.variables, original.variables, strict=True):
            if "learning_rate" not in a.path:
                np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert float(target.optimizer.learning_rate) == pytest.approx(0.5)

    with pytest.raises(warm_start.WarmStartError, match="same method"):
        warm_start.warm_start(_seeded("ukd", 3), resolved, optimizer_state=True, method="ukd_base")
    version = export.export_for_serving(source, schema_lib.Schema.from_dict(TINY_SCHEMA), str(tmp_path / "export"))
    with pytest.raises(warm_start.WarmStartError, match="holds no optimizer state"):
        warm_start.warm_start(_seeded("ukd", 3), warm_start.resolve(version), optimizer_state=True, method="ukd")


def test_unusable_sources_are_named(tmp_path):
    with pytest.raises(warm_start.WarmStartError, match="found no checkpoint or export"):
        warm_start.resolve(str(tmp_path))
    version = tmp_path / "export" / "3"
    tf.saved_model.save(tf.Module(), str(version))  # a SavedModel without tfcvr's manifest
    with pytest.raises(warm_start.WarmStartError, match="tfcvr_weights.json"):
        warm_start.read_weights(warm_start.resolve(str(tmp_path / "export")))


def test_a_run_resumes_only_its_own_warm_started_checkpoints(tmp_path):
    day1 = _checkpoint(_seeded("esmm", 1), str(tmp_path / "day1"))
    given = str(tmp_path / "day1")
    assert warm_start.source_for_run(given, str(tmp_path / "day2" / "checkpoints")).kind == "checkpoint"
    # Yesterday's checkpoints in the folder a warm-started run would use (a reused --model_dir): refused, since
    # resuming them would silently skip the warm start.
    with pytest.raises(warm_start.WarmStartError, match="holds checkpoints of a run not warm-started"):
        warm_start.source_for_run(given, day1)
    warm_start.record(day1, "elsewhere", {"restored": 3})
    with pytest.raises(warm_start.WarmStartError, match="warm-started from elsewhere"):
        warm_start.source_for_run(given, day1)
    warm_start.record(day1, given, {"restored": 3})  # its own checkpoints: a restart resumes them
    assert warm_start.source_for_run(given, day1) is None


def test_served_intercepts_are_never_carried_over_and_a_source_without_them_is_no_mismatch(tmp_path, monkeypatch):
    source = _seeded("esmm", 1)
    source.get_layer("intercept_calibration").ctr_offset.assign(0.25)  # yesterday's refit
    base = str(tmp_path / "export")
    version = export.export_for_serving(source, schema_lib.Schema.from_dict(TINY_SCHEMA), base, version=5)
    learned = [path for path in source.weights_by_path() if not path.startswith("intercept_calibration/")]
    refitted = ["intercept_calibration/ctr_offset", "intercept_calibration/cvr_offset"]
    target = _seeded("esmm", 2)
    report = warm_start.warm_start(target, warm_start.resolve(version))
    assert report["refitted_after_training"] == refitted and report["initialized"] == []
    assert report["restored"] == len(learned)
    assert float(target.get_layer("intercept_calibration").ctr_offset.numpy()) == 0.0  # today's heads, not yesterday's
    _assert_same_weights(source, target, paths=learned)
    # A source from before the served intercepts existed (an older tfcvr): no mismatch, strict as ever.
    older = {k: v for k, v in warm_start.read_weights(warm_start.resolve(version)).items() if k in learned}
    monkeypatch.setattr(warm_start, "read_weights", lambda _: older)
    report = warm_start.warm_start(_seeded("esmm", 3), warm_start.resolve(version))
    assert report["restored"] == len(learned) and report["initialized"] == report["ignored"] == []
