"""README's Python API runs as written (so it cannot drift from the package)."""

import os
import re

import numpy as np
import tensorflow as tf


def _python_api_blocks():
    text = open(os.path.join(os.path.dirname(__file__), os.pardir, "README.md")).read()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_python_api_example_runs_as_written(tmp_path, monkeypatch):
    (block,) = _python_api_blocks()
    assert len(block.strip().splitlines()) <= 15  # notebook-sized
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block, "README.md (Python API)", "exec"), namespace)
    assert set(namespace["history"].history) >= {"loss", "ctr_loss", "ctcvr_loss"}
    assert namespace["scores"]["cvr"].shape == (1,) and 0 < float(namespace["scores"]["cvr"][0]) < 1
    # The notebook's raw-feature score is the export's.
    (version,) = os.listdir(tmp_path / "sim" / "export")
    signature = tf.saved_model.load(str(tmp_path / "sim" / "export" / version)).signatures["predict"]
    schema = namespace["schema"]
    columns = namespace["tfcvr"].data.feature_columns(namespace["rows"], schema)
    served = signature(**{f.name: tf.constant(columns[f.name].tolist(), f.tf_dtype) for f in schema.features})
    np.testing.assert_allclose(namespace["scores"]["cvr"], served["cvr"].numpy(), rtol=1e-6)
    assert (tmp_path / "esmm.keras").exists()
