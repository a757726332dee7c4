"""Evaluation: AUC, log loss, and ground-truth (oracle) metrics."""

import keras
import tensorflow as tf

from tfcvr.metrics.evaluation import METRIC_DESCRIPTIONS, compute_metrics, format_table
from tfcvr.metrics.prediction import collect_predictions
from tfcvr.metrics.significance import paired_difference, paired_p_value


def evaluate(model: keras.Model, dataset: tf.data.Dataset) -> dict:
    """Metrics of `model` over every batch of `dataset` (see `compute_metrics`)."""
    return compute_metrics(*collect_predictions(model, dataset))
