"""Statistics of the training data that become model constructor arguments."""

import numpy as np
import tensorflow as tf

from tfcvr.data import schema as schema_lib

# The rates a task head can start at (`CVRModel(label_rates=...)`): what each observable task predicts.
LABEL_RATES = ("ctr", "cvr", "ctcvr")


def numeric_statistics(dataset: tf.data.Dataset, schema: schema_lib.Schema, max_batches: int = 50) -> dict:
    """{numeric feature: [mean, variance]} over the first `max_batches` batches.

    Read from an unshuffled pipeline, so every worker of a distributed job
    computes the same values and builds the same model. A constant feature gets
    variance 1 so standardising it never divides by zero.
    """
    names = [f.name for f in schema.numeric]
    if not names:
        return {}
    values: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for features, _ in dataset.take(max_batches):
        for name in names:
            values[name].append(features[name].numpy())
    statistics = {}
    for name in names:
        column = np.concatenate(values[name]).astype(np.float64)
        variance = float(column.var())
        statistics[name] = [float(column.mean()), variance if variance > 0 else 1.0]
    return statistics


def label_rates(dataset: tf.data.Dataset, max_batches: int = 200) -> dict:
    """{"ctr": clicks / impressions, "cvr": conversions / clicks, "ctcvr": conversions / impressions}.

    The base rates the task heads start at (`CVRModel(label_rates=...)`), over
    the first `max_batches` batches of an unshuffled pipeline (the same on every
    worker). Each rate is the posterior mean under Jeffreys' prior,
    (k + 1/2) / (n + 1), so a sample without a click or a conversion still gives
    a rate inside (0, 1) (a finite log-odds) instead of a division by zero.
    """
    impressions = clicks = conversions = 0.0
    for _, labels in dataset.take(max_batches):
        click = labels["click"].numpy().astype(np.float64)
        conversion = labels["conversion"].numpy().astype(np.float64)
        impressions += click.size
        clicks += click.sum()
        conversions += (click * conversion).sum()
    if impressions == 0:
        raise ValueError("label_rates: the dataset has no records; the head biases need at least one impression.")
    return {
        "ctr": (clicks + 0.5) / (impressions + 1.0),
        "cvr": (conversions + 0.5) / (clicks + 1.0),
        "ctcvr": (conversions + 0.5) / (impressions + 1.0),
    }


def training_statistics(dataset: tf.data.Dataset, schema: schema_lib.Schema, max_batches: int = 200) -> dict:
    """What a model's constructor takes from its training data: {"numeric_statistics": ..., "label_rates": ...}.

    One read of the first `max_batches` batches of `dataset` (unshuffled, so
    every worker of a distributed job builds the same model):
    `tfcvr.models.build(name, schema, **training_statistics(dataset, schema))`.
    """
    batches = dataset.take(max_batches).cache()  # read once, both statistics from memory
    return {
        "numeric_statistics": numeric_statistics(batches, schema, max_batches),
        "label_rates": label_rates(batches, max_batches),
    }
