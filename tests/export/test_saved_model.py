import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, tiny_row
from tfcvr import export, models
from tfcvr.data import example_writer
from tfcvr.data import schema as schema_lib
from tfcvr.export import weights_manifest


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    schema = schema_lib.Schema.from_dict(TINY_SCHEMA)
    model = models.build("esmm", schema, embedding_dim=4, hidden_units=(8,), tower_units=(4,))
    base = str(tmp_path_factory.mktemp("export"))
    return model, schema, base, export.export_for_serving(model, schema, base, version=7)


def _examples(rows):
    return tf.constant([example_writer.to_example(r).SerializeToString() for r in rows])


def test_layout_and_signatures(exported):
    _, _, base, path = exported
    assert path == os.path.join(base, "7") and os.listdir(base) == ["7"]  # no temporary folder left
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {"serving_default", "predict"}
    default = loaded.signatures["serving_default"]
    assert list(default.structured_input_signature[1]) == ["examples"]
    assert set(default.structured_outputs) == {"ctr", "cvr", "ctcvr"}


def test_examples_and_raw_features_agree_and_honour_the_contract(exported):
    model, schema, _, path = exported
    loaded = tf.saved_model.load(path)
    rows = [tiny_row(user_id=i * 10**15 - 5, item_cat=f"c{i}", price=float(i)) for i in range(5)]
    from_examples = loaded.signatures["serving_default"](examples=_examples(rows))
    from_features = loaded.signatures["predict"](
        user_id=tf.constant([r["user_id"] for r in rows], tf.int64),
        item_cat=tf.constant([r["item_cat"] for r in rows]),
        price=tf.constant([r["price"] for r in rows], tf.float32),
    )
    for key in ("ctr", "cvr", "ctcvr"):
        np.testing.assert_allclose(from_examples[key].numpy(), from_features[key].numpy(), rtol=1e-6)
        values = from_examples[key].numpy()
        assert values.shape == (5,) and np.all((values > 0) & (values < 1))
    np.testing.assert_allclose(
        from_examples["ctcvr"].numpy(), from_examples["ctr"].numpy() * from_examples["cvr"].numpy(), rtol=1e-6
    )
    # Label keys in the request are ignored.
    without_labels = [{k: v for k, v in r.items() if k not in ("click", "conversion")} for r in rows]
    np.testing.assert_allclose(
        loaded.signatures["serving_default"](examples=_examples(without_labels))["cvr"], from_examples["cvr"]
    )


def test_loads_in_a_tf1_session_like_tf_serving(exported):
    """TF Serving's C++ SavedModelBundle loads TF1-style; plain tf.saved_model.save of Keras 3 fails there."""
    _, _, _, path = exported
    script = (
        "import sys, tensorflow as tf\n"
        "tf.compat.v1.disable_eager_execution()\n"
        "with tf.compat.v1.Session(graph=tf.Graph()) as sess:\n"
        "    meta = tf.compat.v1.saved_model.loader.load(sess, ['serve'], sys.argv[1])\n"
        "    sig = meta.signature_def['serving_default']\n"
        "    from tfcvr.data import example_writer\n"
        "    ex = example_writer.to_example({'user_id': 1, 'item_cat': 'a', 'price': 2.0}).SerializeToString()\n"
        "    out = sess.run(sig.outputs['ctcvr'].name, {sig.inputs['examples'].name: [ex, ex]})\n"
        "    print(out.shape, float(out[0]) > 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, path],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("(2,) True")


def test_versions_increase_and_never_overwrite(exported):
    model, schema, base, _ = exported
    assert export.existing_versions(base) == [7]
    newer = export.export_for_serving(model, schema, base)
    assert int(os.path.basename(newer)) > 7
    with pytest.raises(ValueError, match="already exists"):
        export.export_for_serving(model, schema, base, version=7)


def test_an_export_that_fails_midway_leaves_no_version_and_no_temporary_folder(exported, tmp_path, monkeypatch):
    model, schema, _, _ = exported
    base = str(tmp_path / "export")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(weights_manifest, "write_manifest", crash)  # the last file written before the rename
    with pytest.raises(OSError, match="disk full"):
        export.export_for_serving(model, schema, base, version=3)
    assert os.listdir(base) == [] and export.existing_versions(base) == []


def test_on_an_object_store_the_graph_file_is_copied_last(exported, tmp_path, monkeypatch):
    model, schema, _, _ = exported
    copied = []
    original = tf.io.gfile.copy
    monkeypatch.setattr(tf.io.gfile, "copy", lambda a, b, *args: (copied.append(b), original(a, b, *args)))
    path = export.export_for_serving(model, schema, f"file://{tmp_path}", version=4)  # a URL: the copying path
    assert copied[-1] == f"file://{tmp_path}/4/saved_model.pb" and len(copied) > 3
    assert os.listdir(tmp_path) == ["4"] and export.existing_versions(str(tmp_path), complete_only=True) == [4]
    assert "serving_default" in tf.saved_model.load(path).signatures


def test_bad_requests_fail_with_invalid_argument_and_empty_batches_score_nothing(exported):
    _, _, _, path = exported
    loaded = tf.saved_model.load(path)
    predict, default = loaded.signatures["predict"], loaded.signatures["serving_default"]
    good = dict(user_id=tf.constant([1, 2], tf.int64), item_cat=tf.constant(["a", "b"]), price=tf.constant([1.0, 2.0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="numeric feature price has a NaN or Inf value"):
        predict(**{**good, "price": tf.constant([1.0, float("nan")])})
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="feature item_cat has a different number of candidates than user_id"
    ):
        predict(**{**good, "item_cat": tf.constant(["a"])})
    with pytest.raises(tf.errors.InvalidArgumentError, match="Could not parse example input"):
        default(examples=tf.constant([b"not a tf.Example"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="item_cat"):
        default(examples=_examples([{"user_id": 1, "price": 2.0}]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="price"):
        default(examples=_examples([{"user_id": 1, "item_cat": "a", "price": "cheap"}]))
    empty = default(examples=tf.constant([], tf.string))
    assert all(empty[key].shape == (0,) for key in ("ctr", "cvr", "ctcvr"))
    extreme = predict(
        user_id=tf.constant([-(2**63), 2**63 - 1], tf.int64),
        item_cat=tf.constant(["", "x" * 10000]),
        price=tf.constant([-1e30, 1e30]),
    )
    assert np.all((extreme["ctcvr"].numpy() > 0) & (extreme["ctcvr"].numpy() < 1))


def test_warmup_requests_parse_and_replay_against_the_export(exported):
    _, schema, _, path = exported
    logs = export.read_warmup_requests(path)
    assert os.path.exists(os.path.join(path, "assets.extra", "tf_serving_warmup_requests"))
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [
        "serving_default",
        "predict",
        "serving_default",
        "predict",
    ]
    loaded = tf.saved_model.load(path)
    sizes = []
    for log in logs:
        request = log.predict_log.request
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        sizes.append(int(outputs["ctcvr"].shape[0]))
    assert sizes == [1, 1, 100, 100]
