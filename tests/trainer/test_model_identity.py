"""trainer.model_identity: a checkpoint folder refuses another model, and only once it holds a checkpoint."""

import json

import pytest
import tensorflow as tf
from absl import app

from trainer import model_identity

IDENTITY = {
    "model": "esmm",
    "config": {"ctr_loss_weight": 1.0, "hidden_units": [8]},
    "schema_fingerprint": "ab",
    "tfcvr_version": "0.1.0",
}


def _save_checkpoint(folder):
    tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), str(folder), max_to_keep=1).save()


def test_records_then_accepts_the_same_model_and_refuses_another(tmp_path):
    model_identity.check_or_record(str(tmp_path), IDENTITY, write=True)
    assert json.loads((tmp_path / model_identity.IDENTITY_FILE).read_text()) == IDENTITY
    _save_checkpoint(tmp_path)
    model_identity.check_or_record(str(tmp_path), IDENTITY, write=True)  # the same model: a resumed run
    newer = {**IDENTITY, "tfcvr_version": "0.2.0"}  # another version alone is logged, not refused
    model_identity.check_or_record(str(tmp_path), newer, write=True)
    other = {**IDENTITY, "model": "naive", "config": {"ctr_loss_weight": 0.5, "hidden_units": [8]}}
    with pytest.raises(app.UsageError) as error:
        model_identity.check_or_record(str(tmp_path), other, write=True)
    assert "config.ctr_loss_weight: 1.0 -> 0.5" in str(error.value) and "model: 'esmm' -> 'naive'" in str(error.value)
    assert json.loads((tmp_path / model_identity.IDENTITY_FILE).read_text()) == IDENTITY  # not overwritten


def test_without_a_checkpoint_a_corrected_run_replaces_the_identity(tmp_path):
    model_identity.check_or_record(str(tmp_path), IDENTITY, write=True)  # a run that failed before its first save
    corrected = {**IDENTITY, "model": "naive"}
    model_identity.check_or_record(str(tmp_path), corrected, write=True)
    assert json.loads((tmp_path / model_identity.IDENTITY_FILE).read_text())["model"] == "naive"


def test_checkpoints_without_an_identity_are_refused(tmp_path):
    _save_checkpoint(tmp_path)
    with pytest.raises(app.UsageError, match="without a recorded model identity"):
        model_identity.check_or_record(str(tmp_path), IDENTITY, write=True)


def test_differences_list_each_field():
    assert model_identity.differences(IDENTITY, {**IDENTITY, "schema_fingerprint": "cd"}) == [
        "schema_fingerprint: 'ab' -> 'cd'"
    ]
    assert model_identity.differences(IDENTITY, {**IDENTITY, "tfcvr_version": "9"}) == []


def test_a_record_from_before_an_architecture_field_existed_reads_it_at_its_default(tmp_path):
    # Written before `interaction` and PLE's fields existed: those models had no interaction and 2 levels.
    older = {**IDENTITY, "config": {**IDENTITY["config"], "backbone": "shared_bottom"}}
    (tmp_path / model_identity.IDENTITY_FILE).write_text(json.dumps(older))
    _save_checkpoint(tmp_path)
    current = {
        **older,
        "config": {**older["config"], "interaction": "none", "cross_rank": None, "extraction_levels": 2},
    }
    model_identity.check_or_record(str(tmp_path), current, write=True)  # the same model: resumes
    crossed = {**current, "config": {**current["config"], "interaction": "cross"}}
    with pytest.raises(app.UsageError, match="config.interaction: 'none' -> 'cross'"):
        model_identity.check_or_record(str(tmp_path), crossed, write=True)
    ple = {**current, "config": {**current["config"], "backbone": "ple"}}
    with pytest.raises(app.UsageError, match="config.backbone: 'shared_bottom' -> 'ple'"):
        model_identity.check_or_record(str(tmp_path), ple, write=True)
