"""A disk that fills at every page through a checkpoint, an export and a run's files: nothing half-written looks whole.

Each write is attempted with room for 0, 1, 2, ... pages on a size-limited
tmpfs (tests/small_disk.py) until it fits; after every failed attempt the
previous checkpoint or export still loads with its values, no partial file is
left where a reader looks, and once space returns the next attempt succeeds.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, small_model, tiny_row, write_rows
from tests.small_disk import PAGE, small_disk
from tfcvr import atomic, export
from tfcvr.data import TFRecordPipeline
from tfcvr.data import schema as schema_lib
from tfcvr.export.versions import existing_versions
from trainer.loop import CheckpointWriteError, TrainingLoop

# End-to-end: a mounted file system, dozens of writes cut short; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow

SCHEMA = schema_lib.Schema.from_dict(TINY_SCHEMA)


def _rows(tmp_path):
    return write_rows(tmp_path / "rows.tfrecord", [tiny_row(user_id=i, click=i % 2) for i in range(64)])


def _weights(model):
    return {path: variable.numpy().copy() for path, variable in model.weights_by_path().items()}


def _assert_same(weights, model):
    for path, value in _weights(model).items():
        np.testing.assert_array_equal(value, weights[path], err_msg=path)


def test_a_checkpoint_cut_short_at_every_page_leaves_the_previous_one_whole(tmp_path):
    pipeline = TFRecordPipeline(_rows(tmp_path), SCHEMA, 16)
    strategy = tf.distribute.get_strategy()
    with small_disk(tmp_path / "disk") as disk:
        folder = os.path.join(disk.path, "checkpoints")
        model = small_model("esmm")
        loop = TrainingLoop(model, strategy, folder)
        loop.train(lambda context, epoch: pipeline.dataset(), epochs=1, global_batch_size=16)
        whole, files = _weights(model), sorted(os.listdir(folder))
        assert tf.train.latest_checkpoint(folder).endswith("ckpt-4")
        failures = 0
        for pages in range(64):
            assert loop.restore()  # as a restarted job: from the newest whole checkpoint
            _assert_same(whole, model)
            disk.free(pages * PAGE)
            try:
                loop.train(lambda context, epoch: pipeline.dataset(), epochs=2, global_batch_size=16)
            except CheckpointWriteError as e:
                failures += 1
                assert f"Could not write checkpoint {folder}/ckpt-8: " in str(e)
                assert f"The newest whole checkpoint ({folder}/ckpt-4) is intact" in str(e)
                assert sorted(os.listdir(folder)) == files  # no partial ckpt-8 files
                assert tf.train.latest_checkpoint(folder).endswith("ckpt-4")
                continue
            finally:
                disk.unlimited()
            break  # it fitted: the next run after space returned
        assert failures >= 3, f"a checkpoint of several pages failed only {failures} times"
        assert tf.train.latest_checkpoint(folder).endswith("ckpt-8")
        trained = _weights(model)
        restored = small_model("esmm")
        assert TrainingLoop(restored, strategy, folder).restore()
        _assert_same(trained, restored)


def test_an_export_cut_short_at_every_page_leaves_no_version_and_the_previous_one_serving(tmp_path):
    model = small_model("esmm")
    request = tf.constant([example_bytes(user_id=3), example_bytes(user_id=9)])
    with small_disk(tmp_path / "disk") as disk:
        base = os.path.join(disk.path, "export")
        previous = export.export_for_serving(model, SCHEMA, base, version=1)
        scores = _serve(previous, request)
        for variable in model.trainable_variables:
            variable.assign(variable + 0.5)  # a model that scores differently
        failures = 0
        for pages in range(200):
            disk.free(pages * PAGE)
            try:
                export.export_for_serving(model, SCHEMA, base, version=2)
            except (tf.errors.OpError, OSError) as e:
                failures += 1
                assert "space" in str(e).lower(), e
                assert sorted(os.listdir(base)) == ["1"]  # no version 2, no temporary folder
                assert existing_versions(base, complete_only=True) == [1]
                for key, value in _serve(previous, request).items():
                    np.testing.assert_array_equal(value, scores[key])
                continue
            finally:
                disk.unlimited()
            break
        assert failures >= 20, f"an export of dozens of pages failed only {failures} times"
        assert existing_versions(base, complete_only=True) == [1, 2]
        served = _serve(os.path.join(base, "2"), request)
        assert not np.allclose(served["cvr"], scores["cvr"])


def test_a_run_file_cut_short_at_every_page_keeps_its_previous_contents(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        path = os.path.join(disk.path, "metrics.json")
        atomic.write_file(path, json.dumps({"run": 1}))
        text = json.dumps({"run": 2, "values": list(range(6000))})  # several pages
        failures = 0
        for pages in range(64):
            disk.free(pages * PAGE)
            try:
                atomic.write_file(path, text)
            except (tf.errors.OpError, OSError):
                failures += 1
                assert json.loads(open(path).read()) == {"run": 1}
                assert os.listdir(disk.path) == ["metrics.json"]  # its temporary file removed
                continue
            finally:
                disk.unlimited()
            break
        assert failures >= 5 and json.loads(open(path).read())["run"] == 2


def test_a_full_disk_fails_the_command_and_the_rerun_finishes_from_its_checkpoint(tmp_path):
    rows = _rows(tmp_path)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(TINY_SCHEMA))
    with small_disk(tmp_path / "disk") as disk:
        model_dir = os.path.join(disk.path, "run")
        command = [
            sys.executable,
            "-m",
            "trainer.task",
            f"--train_files={rows}",
            f"--eval_files={rows}",
            f"--schema={schema}",
            f"--model_dir={model_dir}",
            "--batch_size=16",
            "--embedding_dim=4",
            "--hidden_units=8",
            "--tower_units=4",
            "--epochs=2",
        ]
        env = {**os.environ, "PYTHONPATH": os.getcwd(), "PYTHONDONTWRITEBYTECODE": "1"}
        # Room for the run's first files and checkpoint, not for the export.
        disk.free(40 * PAGE)
        full = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        disk.unlimited()
        assert full.returncode != 0 and "No space left on device" in full.stderr, full.stderr[-3000:]
        assert not os.path.exists(os.path.join(model_dir, "metrics.json"))  # the run did not finish
        assert existing_versions(os.path.join(model_dir, "export"), complete_only=True) == []
        rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "Restored " in rerun.stderr  # resumed from what the full disk let it write
        report = json.loads(open(os.path.join(model_dir, "metrics.json")).read())
        assert len(existing_versions(os.path.join(model_dir, "export"), complete_only=True)) == 1
        assert report["export"].startswith(os.path.join(model_dir, "export"))


def example_bytes(**overrides):
    from tfcvr.data import example_writer

    return example_writer.to_example(tiny_row(**overrides)).SerializeToString()


def _serve(version_dir, request):
    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    return {key: value.numpy() for key, value in signature(examples=request).items()}
