"""The stand-in server's version lifecycle: policies, background loading, labels on loaded versions, config reload."""

import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from serving import ServingError
from serving.local import ExportedModels, served_models
from serving.local import models as local_models
from tests.conftest import TINY_SCHEMA, tiny_row
from tfcvr import atomic, export, models
from tfcvr.data import schema as schema_lib
from tfcvr.export import model_config

SCHEMA = schema_lib.Schema.from_dict(TINY_SCHEMA)
ROW = tiny_row()


def _export(base, version, seed):
    keras.utils.set_random_seed(seed)
    model = models.build("esmm", SCHEMA, embedding_dim=4, hidden_units=(8,), tower_units=(4,))
    export.export_for_serving(model, SCHEMA, base, version=version)


def _inputs():
    return {f.name: np.array([ROW[f.name]], dtype=object if f.is_categorical else np.float32) for f in SCHEMA.features}


def _cvr(exported, **request):
    version, outputs = exported.predict("cvr", _inputs(), signature_name="predict", convert_dtypes=True, **request)
    return version, float(outputs["cvr"][0])


def _direct_cvr(base, version):
    """The score of the version's SavedModel loaded on its own."""
    features = {f.name: tf.constant([ROW[f.name]], f.tf_dtype) for f in SCHEMA.features}
    return float(tf.saved_model.load(f"{base}/{version}").signatures["predict"](**features)["cvr"][0])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("lifecycle") / "export")
    for version, seed in ((1, 0), (2, 1)):
        _export(base, version, seed)
    return base


def test_latest_policy_moves_to_a_new_version_after_loading_it_and_unloads_the_old(base, tmp_path):
    local = str(tmp_path / "export")
    tf.io.gfile.makedirs(local)
    for version in (1, 2):
        tf.io.gfile.rename(f"{base}/{version}", f"{local}/{version}")
    try:
        tf.io.gfile.makedirs(f"{local}/3")  # an empty (half-copied) version folder is never loaded
        tf.io.gfile.makedirs(f"{local}/.tmp-4-x")
        exported = ExportedModels({"cvr": local}, file_system_poll_wait_seconds=0)
        assert exported.versions("cvr") == [2]
        assert _cvr(exported) == (2, pytest.approx(_direct_cvr(local, 2), rel=1e-6))
        with pytest.raises(ServingError, match=r"Specific\(cvr, 1\)"):
            _cvr(exported, version=1)  # TF Serving's default policy serves only the newest version
        tf.io.gfile.rmtree(f"{local}/3")
        tf.io.gfile.makedirs(f"{local}/4")
        with open(f"{local}/4/saved_model.pb", "wb") as f:
            f.write(b"not a SavedModel")  # complete-looking but broken: it fails to load...
        exported.refresh()
        assert exported.versions("cvr") == [2] and _cvr(exported)[0] == 2  # ...and version 2 keeps serving
        tf.io.gfile.rmtree(f"{local}/4")
        tf.io.gfile.rename(f"{local}/2", f"{local}/5")  # a new version appears (renamed into place)
        exported.refresh()
        assert exported.versions("cvr") == [5] and _cvr(exported)[0] == 5
    finally:
        for version, original in ((1, 1), (5, 2)):
            tf.io.gfile.rename(f"{local}/{version}", f"{base}/{original}")


def test_a_label_must_name_a_served_version(base):
    with pytest.raises(ValueError, match="label 'stable' to version 1 of model cvr, which is not currently available"):
        ExportedModels({"cvr": base}, {"cvr": {"stable": 1}}, file_system_poll_wait_seconds=0)
    exported = ExportedModels(
        served_models({"cvr": base}, {"cvr": {"stable": 1}}, latest_versions=2), file_system_poll_wait_seconds=0
    )
    assert _cvr(exported, version_label="stable") == (1, pytest.approx(_direct_cvr(base, 1), rel=1e-6))
    assert _cvr(exported)[0] == 2


def test_an_edited_config_file_moves_labels_and_an_invalid_one_is_not_applied(base, tmp_path):
    path = str(tmp_path / "models.config")
    atomic.write_file(path, model_config.model_config({"cvr": base}, labels={"cvr": {"stable": 2}}, all_versions=True))
    exported = ExportedModels(
        file_system_poll_wait_seconds=0, model_config_file=path, model_config_file_poll_wait_seconds=0.1
    )
    try:
        assert exported.versions("cvr") == [1, 2] and _cvr(exported, version_label="stable")[0] == 2
        atomic.write_file(path, model_config.set_labels(open(path).read(), {"cvr": {"stable": 1}}))
        deadline = time.time() + 10
        while _cvr(exported, version_label="stable")[0] != 1 and time.time() < deadline:
            time.sleep(0.05)
        assert _cvr(exported, version_label="stable")[0] == 1  # rolled back without a restart
        exported.close()  # no poller from here: the reload below is the only one
        atomic.write_file(path, model_config.set_labels(open(path).read(), {"cvr": {"stable": 9}}))
        assert exported.reload_config() is False  # version 9 is not served: the edit is refused...
        assert _cvr(exported, version_label="stable")[0] == 1  # ...and the previous configuration kept
        assert exported.reload_config() is True  # not retried until the file changes again
    finally:
        exported.close()


def _pollers():
    return {thread for thread in threading.enumerate() if thread.name == "model-poll"}


def test_close_waits_for_the_pollers_and_exit_closes_what_is_still_polling(base):
    before = _pollers()
    with ExportedModels({"cvr": base}, file_system_poll_wait_seconds=0.01) as exported:
        started = _pollers() - before
        assert len(started) == 1
    assert not any(thread.is_alive() for thread in started)  # joined, not just told to stop
    assert _cvr(exported)[0] == 2  # the loaded versions keep answering
    # Left polling (the {name: base} form of start_grpc_server): the atexit hook closes it while the
    # interpreter can still let a poll in a TensorFlow call finish (a daemon thread killed there aborts).
    forgotten = ExportedModels({"cvr": base}, file_system_poll_wait_seconds=0.01)
    started = _pollers() - before
    assert len(started) == 1 and forgotten in local_models._POLLING
    local_models._close_all_at_exit()
    assert not any(thread.is_alive() for thread in started) and forgotten not in local_models._POLLING
