"""Statistics of the training data that become model constructor arguments."""

import numpy as np
import tensorflow as tf

from tfcvr.data import schema as schema_lib


def numeric_statistics(dataset: tf.data.Dataset, schema: schema_lib.Schema, max_batches: int = 50) -> dict:
    """{numeric feature: [mean, variance]} over the first `max_batches` batches.

    Read from an unshuffled pipeline, so every worker of a distributed job
    computes the same values and builds the same model. A constant feature gets
    variance 1 so standardising it never divides by zero.
    """
    names = [f.name for f in schema.numeric]
    if not names:
        return {}
    values = {name: [] for name in names}
    for features, _ in dataset.take(max_batches):
        for name in names:
            values[name].append(features[name].numpy())
    statistics = {}
    for name in names:
        column = np.concatenate(values[name]).astype(np.float64)
        variance = float(column.var())
        statistics[name] = [float(column.mean()), variance if variance > 0 else 1.0]
    return statistics
