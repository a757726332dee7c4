"""From a real dataset sample to a served model: `python -m tfcvr.data.convert` then `python -m trainer.task`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfcvr.data import schema as schema_lib

# End-to-end: subprocesses, clusters or training to a bar; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow


def _python(*args):
    result = subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_paddlerec_sample_converts_trains_and_serves_lists(tmp_path, shared_data):
    data = tmp_path / "data"
    sample = shared_data / "ali-ccp" / "paddlerec-esmm"
    result = _python(
        "tfcvr.data.convert",
        "aliccp",
        f"--paddlerec_text={sample / 'train' / 'small.txt'}",
        f"--out={data}",
        "--valid_fraction=0.3",
        "--split_seed=1",
        "--num_shards=2",
    )
    assert "rows read 10, written 10" in result.stderr
    _python(
        "tfcvr.data.convert",
        "aliccp",
        f"--paddlerec_text={sample / 'test' / 'small.txt'}",
        f"--out={data}",
        "--split=test",
        f"--schema={data / 'schema.json'}",
        "--quiet",
        "--runner=InProcess",
    )
    schema = schema_lib.load_schema(str(data / "schema.json"))
    assert {f.name for f in schema.lists} == {"109_14", "110_14", "127_14", "150_14", "210", "508", "509", "702", "853"}

    model_dir = tmp_path / "run"
    _python(
        "trainer.task",
        "--model=esmm",
        f"--train_files={data / 'train-*'}",
        f"--eval_files={data / 'test-*'}",
        f"--schema={data / 'schema.json'}",
        f"--model_dir={model_dir}",
        "--epochs=2",
        "--batch_size=4",
        "--embedding_dim=4",
        "--hidden_units=8",
        "--tower_units=4",
    )
    report = json.loads((model_dir / "metrics.json").read_text())
    assert report["model"] == "esmm" and report["metrics"]["impressions"] == 10
    assert report["metrics"]["clicks"] == 1  # the test file's labels

    version = os.path.join(model_dir, "export", os.listdir(model_dir / "export")[0])
    served = tf.saved_model.load(version).signatures["serving_default"]
    records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(str(data / "test-*"))))]
    scores = served(examples=tf.constant(records))["ctcvr"].numpy()
    assert scores.shape == (10,) and np.all((scores > 0) & (scores < 1))
