"""Which variable of an export is which model weight: `assets.extra/tfcvr_weights.json` in every version.

A SavedModel written by Keras' `ExportArchive` stores the model's variables
as a list (`variables/<i>` in its checkpoint, in the order of
`model.variables`), without their Keras paths. The manifest records, for
every model weight (`CVRModel.weights_by_path`), its index in that list and
its shape, so a later run can start from an exported version's weights by
path (`trainer.warm_start`). TF Serving ignores the file.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

MANIFEST_FILE = os.path.join("assets.extra", "tfcvr_weights.json")
# How ExportArchive's checkpoint names the i-th tracked variable.
_EXPORT_VARIABLE_KEY = "variables/{}/.ATTRIBUTES/VARIABLE_VALUE"


def write_manifest(model: keras.Model, version_dir: str) -> None:
    """Writes the manifest of `model` (a `CVRModel`, as exported) into `version_dir`."""
    index = {id(variable): i for i, variable in enumerate(model.variables)}
    weights = {
        path: {"index": index[id(variable)], "shape": list(variable.shape)}
        for path, variable in model.weights_by_path().items()
    }
    path = os.path.join(version_dir, MANIFEST_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps({"format": 1, "weights": weights}, indent=1, sort_keys=True) + "\n")


def read_exported_weights(version_dir: str) -> dict[str, np.ndarray]:
    """{weight path: value} of an export version; ValueError naming the version when it cannot be read by path."""
    path = os.path.join(version_dir, MANIFEST_FILE)
    if not tf.io.gfile.exists(path):
        raise ValueError(
            f"{version_dir} has no {MANIFEST_FILE} (it was exported by an older tfcvr, or not by tfcvr): its "
            "variables cannot be matched by path. Start from the checkpoints of the run that exported it."
        )
    with tf.io.gfile.GFile(path) as f:
        manifest = json.load(f)
    reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
    values = {}
    for weight, entry in manifest["weights"].items():
        key = _EXPORT_VARIABLE_KEY.format(entry["index"])
        if not reader.has_tensor(key):
            raise ValueError(f"{version_dir}: the manifest names variable {entry['index']} ({weight}), absent.")
        value = reader.get_tensor(key)
        if list(value.shape) != entry["shape"]:
            raise ValueError(
                f"{version_dir}: variable {entry['index']} has shape {list(value.shape)}, the manifest says "
                f"{weight} has {entry['shape']}; the export is damaged."
            )
        values[weight] = value
    return values
