"""SavedModel export in TF Serving's layout: `<export_base>/<integer version>/`.

Signatures (docs/serving.md):

* `serving_default`: `examples`, a 1-D tf.string tensor of serialized
  tf.train.Example (features only; label keys are ignored) -> float32 `ctr`,
  `cvr`, `ctcvr` of shape [batch], each in (0, 1), ctcvr = ctr * cvr.
* `predict`: one 1-D tensor per schema feature holding raw values (int64 or
  string ids before hashing, float32 numerics) -> the same outputs. This is
  the form a ranker that builds requests from its own feature store sends.

Both hash categorical values with `tfcvr.data.transform`, the function the
training pipeline uses. Bad requests fail with INVALID_ARGUMENT and a message
naming the problem, never a crash or a hang: a missing feature, a wrong dtype
or bytes that are not a tf.Example (parse_example's own errors), a NaN or Inf
numeric value, features of different lengths (`predict`). Any int64 id,
negative or huge, and any string is valid (it is hashed). An empty batch
returns empty outputs.

The export goes through Keras' `ExportArchive`, whose SavedModels load in TF1
sessions as TF Serving's C++ loader does (a plain `tf.saved_model.save` of a
Keras 3 model does not: the session load fails with "Could not find
variable"), gets warmup
requests in `assets.extra/` (`tfcvr.export.warmup`) and the paths of its
weights (`tfcvr.export.weights_manifest`, for warm starts), is written to a hidden
temporary folder, and is renamed into place (on gs://, copied with its graph
file last), so a server polling the folder never sees a half-written version.
"""

import os
import uuid

import keras
import tensorflow as tf

from tfcvr.data import schema as schema_lib
from tfcvr.data import transform
from tfcvr.export import retention, warmup, weights_manifest
from tfcvr.export.signatures import PREDICT, SERVING_DEFAULT
from tfcvr.export.versions import SAVED_MODEL_FILE, next_version
from tfcvr.models.base import SERVING_OUTPUTS, CVRModel

# sigmoid saturates to exactly 0 or 1 in float32; the contract is the open interval.
_PROBABILITY_EPSILON = 1e-7


def export_for_serving(
    model: CVRModel,
    schema: schema_lib.Schema,
    export_base: str,
    version: int | None = None,
    keep_versions: int | None = None,
) -> str:
    """Writes `model` to `<export_base>/<version>/` and returns that path.

    Args:
      model: a trained `CVRModel` (inputs: hashed features, outputs include
        `ctr` and `cvr`).
      schema: the `Schema` the model was trained on.
      export_base: the folder TF Serving watches (local or gs://).
      version: integer version; default: the current Unix time in seconds, or
        one more than the newest existing version if that is larger.
      keep_versions: after the export, keep only the newest N complete
        versions (`tfcvr.export.retain_versions`); None keeps all.
    """
    tf.io.gfile.makedirs(export_base)
    version = next_version(export_base) if version is None else int(version)
    final_path = os.path.join(export_base, str(version))
    if tf.io.gfile.exists(final_path):
        raise ValueError(f"Export version {final_path} already exists; versions are never overwritten.")
    spec = transform.feature_spec(schema)

    def serve_examples(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(examples, spec)
        return _serving_outputs(model, _checked_model_inputs(parsed, schema))

    def serve_features(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return _serving_outputs(model, _checked_model_inputs(features, schema))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SERVING_DEFAULT, serve_examples, input_signature=[tf.TensorSpec([None], tf.string, name="examples")]
    )
    archive.add_endpoint(PREDICT, serve_features, input_signature=[transform.raw_input_signature(schema)])
    # A leading dot: not an integer, so TF Serving never tries to load it.
    temporary_path = os.path.join(export_base, f".tmp-{version}-{uuid.uuid4().hex}")
    try:
        archive.write_out(temporary_path, verbose=False)
        warmup.write_warmup_requests(temporary_path, schema)
        weights_manifest.write_manifest(model, temporary_path)
        _publish(temporary_path, final_path)
    finally:
        if tf.io.gfile.exists(temporary_path):
            tf.io.gfile.rmtree(temporary_path)
    if keep_versions is not None:
        retention.retain_versions(export_base, keep_versions, protect=(version,))
    return final_path


def _publish(temporary_path: str, final_path: str) -> None:
    """Makes the written version visible so that no reader sees it complete before it is.

    A local rename is atomic. On object stores (gs://) a folder rename copies
    object by object, so the files are copied with `saved_model.pb` last:
    a version counts as complete (`existing_versions(complete_only=True)`, TF
    Serving's loader) only once everything it needs is there, and a copy cut
    short leaves an incomplete folder that readers skip.
    """
    if "://" not in temporary_path:
        tf.io.gfile.rename(temporary_path, final_path)
        return
    files = []
    for folder, _, names in tf.io.gfile.walk(temporary_path):
        files += [os.path.join(folder, name) for name in names]
    graph = os.path.join(temporary_path, SAVED_MODEL_FILE)
    for source in sorted(files, key=lambda path: path == graph):  # the graph file last
        target = os.path.join(final_path, os.path.relpath(source, temporary_path))
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.copy(source, target)
    tf.io.gfile.rmtree(temporary_path)


def _checked_model_inputs(raw_features, schema) -> dict:
    """`transform.to_model_inputs` after the checks that keep bad requests from producing NaN scores."""
    names = [f.name for f in schema.features]
    size = _num_candidates(raw_features[names[0]])
    checks = []
    for feature in schema.features:
        value = raw_features[feature.name]
        checks.append(
            tf.debugging.assert_equal(
                _num_candidates(value),
                size,
                message=f"feature {feature.name} has a different number of candidates than {names[0]}",
            )
        )
        if not feature.is_categorical:
            checks.append(
                tf.debugging.assert_all_finite(
                    tf.cast(value, tf.float32), f"numeric feature {feature.name} has a NaN or Inf value"
                )
            )
    with tf.control_dependencies(checks):
        checked = {
            name: tf.nest.map_structure(tf.identity, raw_features[name], expand_composites=True) for name in names
        }
    return transform.to_model_inputs(checked, schema)


def _num_candidates(value) -> tf.Tensor:
    """Rows of a dense feature tensor or of a parsed categorical_list (a SparseTensor)."""
    if isinstance(value, tf.SparseTensor):
        return tf.cast(value.dense_shape[0], tf.int32)
    return tf.shape(value)[0]


def _serving_outputs(model, inputs) -> dict:
    outputs = model(inputs, training=False)
    ctr = tf.clip_by_value(outputs["ctr"], _PROBABILITY_EPSILON, 1.0 - _PROBABILITY_EPSILON)
    cvr = tf.clip_by_value(outputs["cvr"], _PROBABILITY_EPSILON, 1.0 - _PROBABILITY_EPSILON)
    served = {"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr}
    return {key: tf.cast(served[key], tf.float32) for key in SERVING_OUTPUTS}
