"""Ranking candidates -> the inputs of the two serving signatures.

A candidate is a dict {feature name: scalar value} (int ids, str ids, float
numerics; label keys are ignored by the model), a `tf.train.Example`, or the
bytes of a serialized one.
"""

from collections.abc import Iterable

import tensorflow as tf

from tfcvr.data import example_writer
from tfcvr.data.columns import feature_columns

__all__ = ["feature_columns", "serialized_examples"]


def serialized_examples(candidates: Iterable[dict | tf.train.Example | bytes]) -> list:
    """Serialized tf.Example bytes, one per candidate (the `serving_default` input)."""
    serialized = []
    for index, candidate in enumerate(candidates):
        if isinstance(candidate, bytes):
            serialized.append(candidate)
        elif isinstance(candidate, tf.train.Example):
            serialized.append(candidate.SerializeToString())
        elif isinstance(candidate, dict):
            serialized.append(example_writer.to_example(candidate).SerializeToString())
        else:
            raise TypeError(
                f"Candidate {index} is a {type(candidate).__name__}; expected a dict of feature values, "
                "a tf.train.Example or serialized tf.Example bytes."
            )
    return serialized
