"""Running a model over a dataset and collecting predictions and labels."""

import weakref

import keras
import numpy as np
import tensorflow as tf

from tfcvr.models.base import SERVING_OUTPUTS

# Collected when a model outputs them: the click propensity of IPW/DR methods.
DIAGNOSTIC_OUTPUTS = ("propensity",)


def collect_predictions(model: keras.Model, dataset: tf.data.Dataset) -> tuple:
    """(predictions, labels): dicts of 1-D numpy arrays over the whole dataset.

    Predictions are the serving outputs `ctr`, `cvr`, `ctcvr` in inference mode,
    plus `propensity` when the model has one.
    """
    keys = SERVING_OUTPUTS + tuple(k for k in DIAGNOSTIC_OUTPUTS if k in model.output)
    predict = _predict_function(model, keys, dataset.element_spec[0])
    predictions: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    labels: dict[str, list[np.ndarray]] = {}
    for features, batch_labels in dataset:
        for key, value in predict(features).items():
            predictions[key].append(value.numpy())
        for key, value in batch_labels.items():
            labels.setdefault(key, []).append(value.numpy())
    if not predictions["ctr"]:
        raise ValueError("The evaluation dataset is empty.")
    return (
        {k: np.concatenate(v) for k, v in predictions.items()},
        {k: np.concatenate(v) for k, v in labels.items()},
    )


# One traced inference function per model (and feature spec): evaluating after every epoch or every run then traces
# once, where a function created per call traced again each time (and its short last batch once more), which
# TensorFlow reports as excessive retracing.
_PREDICT_FUNCTIONS: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


def _predict_function(model: keras.Model, keys: tuple, feature_spec: dict) -> tf.types.experimental.GenericFunction:
    """`model`'s outputs `keys` in inference mode, traced once for any batch size."""
    signature = {name: tf.TensorSpec([None, *spec.shape[1:]], spec.dtype) for name, spec in feature_spec.items()}
    cache_key = (keys, tuple(sorted((name, str(spec)) for name, spec in signature.items())))
    functions = _PREDICT_FUNCTIONS.setdefault(model, {})
    if cache_key not in functions:
        # A weak reference: a function holding its model would keep the cache entry (and the model) alive forever.
        model_ref = weakref.ref(model)

        @tf.function(input_signature=[signature])
        def predict(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            live_model = model_ref()
            if live_model is None:  # the cache entry goes with its model, so only a function kept elsewhere gets here
                raise RuntimeError(
                    "The model of this prediction function was garbage-collected; predict with a live model."
                )
            outputs = live_model(features, training=False)
            return {k: outputs[k] for k in keys}

        functions[cache_key] = predict
    return functions[cache_key]
