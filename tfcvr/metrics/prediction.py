"""Running a model over a dataset and collecting predictions and labels."""

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

    @tf.function
    def predict(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        outputs = model(features, training=False)
        return {k: outputs[k] for k in keys}

    predictions, labels = {k: [] for k in keys}, {}
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
