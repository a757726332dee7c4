"""SavedModel export in TF Serving's layout: `<export_base>/<integer version>/`.

Signatures (DESIGN.md, "Serving signature"):

* `serving_default`: `examples`, a 1-D tf.string tensor of serialized
  tf.train.Example (features only; label keys are ignored) -> float32 `ctr`,
  `cvr`, `ctcvr` of shape [batch], each in (0, 1), ctcvr = ctr * cvr.
* `predict_features`: one 1-D tensor per schema feature holding raw values
  (int64 or string ids before hashing, float32 numerics) -> the same outputs.
  This is the form a ranker that builds requests from its own feature store
  sends.

Both hash categorical values with `tfcvr.data.transform`, the function the
training pipeline uses. The export goes through Keras' `ExportArchive`, whose
SavedModels load in TF1 sessions as TF Serving's C++ loader does
(research/env.md §2c), is written to a hidden temporary folder, and is renamed
into place, so a server polling the folder never sees a half-written version.
"""

import os
import time
import uuid

import keras
import tensorflow as tf

from tfcvr.data import transform
from tfcvr.models.base import SERVING_OUTPUTS

SERVING_DEFAULT = "serving_default"
PREDICT_FEATURES = "predict_features"
# sigmoid saturates to exactly 0 or 1 in float32; the contract is the open interval.
_PROBABILITY_EPSILON = 1e-7


def export_for_serving(model, schema, export_base: str, version=None) -> str:
    """Writes `model` to `<export_base>/<version>/` and returns that path.

    Args:
      model: a trained `CVRModel` (inputs: hashed features, outputs include
        `ctr` and `cvr`).
      schema: the `Schema` the model was trained on.
      export_base: the folder TF Serving watches (local or gs://).
      version: integer version; default: the current Unix time in seconds, or
        one more than the newest existing version if that is larger.
    """
    tf.io.gfile.makedirs(export_base)
    version = next_version(export_base) if version is None else int(version)
    final_path = os.path.join(export_base, str(version))
    if tf.io.gfile.exists(final_path):
        raise ValueError(f"Export version {final_path} already exists; versions are never overwritten.")
    spec = transform.feature_spec(schema)

    def serve_examples(examples):
        parsed = tf.io.parse_example(examples, spec)
        return _serving_outputs(model, transform.to_model_inputs(parsed, schema))

    def serve_features(features):
        return _serving_outputs(model, transform.to_model_inputs(features, schema))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SERVING_DEFAULT, serve_examples, input_signature=[tf.TensorSpec([None], tf.string, name="examples")]
    )
    archive.add_endpoint(PREDICT_FEATURES, serve_features, input_signature=[transform.raw_input_signature(schema)])
    # A leading dot: not an integer, so TF Serving never tries to load it.
    temporary_path = os.path.join(export_base, f".tmp-{version}-{uuid.uuid4().hex}")
    try:
        archive.write_out(temporary_path, verbose=False)
        tf.io.gfile.rename(temporary_path, final_path)
    finally:
        if tf.io.gfile.exists(temporary_path):
            tf.io.gfile.rmtree(temporary_path)
    return final_path


def existing_versions(export_base: str) -> list:
    """Integer version folders under `export_base`, ascending."""
    if not tf.io.gfile.isdir(export_base):
        return []
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(export_base))
    return sorted(int(name) for name in names if name.isdigit())


def next_version(export_base: str) -> int:
    versions = existing_versions(export_base)
    return max([int(time.time())] + [v + 1 for v in versions])


def _serving_outputs(model, inputs) -> dict:
    outputs = model(inputs, training=False)
    ctr = tf.clip_by_value(outputs["ctr"], _PROBABILITY_EPSILON, 1.0 - _PROBABILITY_EPSILON)
    cvr = tf.clip_by_value(outputs["cvr"], _PROBABILITY_EPSILON, 1.0 - _PROBABILITY_EPSILON)
    served = {"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr}
    return {key: tf.cast(served[key], tf.float32) for key in SERVING_OUTPUTS}
