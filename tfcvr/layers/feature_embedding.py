"""Feature embedding: one table per categorical feature, normalised numerics."""

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfcvr")
class FeatureEmbedding(keras.layers.Layer):
    """Concatenates per-feature embeddings and standardised numeric features.

    Input: a dict of [batch] tensors, bucket ids (int) for each categorical
    feature and floats for each numeric one (what `tfcvr.data` produces); a
    feature named in `lists` is [batch, max_length] bucket ids padded with
    -1, and its embedding is the mean over the non-padding ids (zeros for an
    empty list).
    Output: [batch, sum(embedding_dim) + num_numeric].

    Args:
      categorical: {name: num_buckets}; each feature gets its own table.
      lists: the names in `categorical` that are categorical_list features.
      numeric: names of the numeric features, in order.
      embedding_dim: width of every table.
      numeric_mean, numeric_variance: per numeric feature statistics from the
        training data (see `tfcvr.data.statistics`); numerics are fed as
        (x - mean) / sqrt(variance). Defaults 0 and 1. They are constructor
        arguments, not adapted state, so every replica of a distributed job
        builds the same layer.

    Example:
    >>> layer = FeatureEmbedding({"user_id": 10}, ["price"], embedding_dim=4)
    >>> layer({"user_id": np.array([1, 2]), "price": np.array([3.0, 4.0])}).shape
    (2, 5)
    """

    def __init__(
        self, categorical, numeric=(), embedding_dim=16, numeric_mean=None, numeric_variance=None, lists=(), **kwargs
    ):
        super().__init__(**kwargs)
        if embedding_dim < 1:
            raise ValueError(f"`embedding_dim` must be positive. Received: {embedding_dim}")
        if not categorical and not numeric:
            raise ValueError("FeatureEmbedding needs at least one categorical or numeric feature.")
        for name, buckets in categorical.items():
            if buckets < 1:
                raise ValueError(f"Feature '{name}': num_buckets must be positive. Received: {buckets}")
        self.categorical = dict(categorical)
        unknown = sorted(set(lists) - set(self.categorical))
        if unknown:
            raise ValueError(f"`lists` names {unknown}, which are not in `categorical` {sorted(self.categorical)}.")
        self.lists = tuple(lists)
        self.numeric = tuple(numeric)
        self.embedding_dim = embedding_dim
        self.numeric_mean = _per_feature(numeric_mean, self.numeric, 0.0, "numeric_mean")
        self.numeric_variance = _per_feature(numeric_variance, self.numeric, 1.0, "numeric_variance")
        if any(v <= 0 for v in self.numeric_variance):
            raise ValueError(f"`numeric_variance` must be positive. Received: {self.numeric_variance}")
        self.embeddings = {
            name: keras.layers.Embedding(buckets, embedding_dim, name=f"{name}_embedding")
            for name, buckets in self.categorical.items()
        }

    def build(self, input_shape: dict[str, tuple]) -> None:
        for embedding in self.embeddings.values():
            embedding.build((None,))

    def call(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        parts = [
            self._pooled(name, inputs[name]) if name in self.lists else self.embeddings[name](inputs[name])
            for name in self.categorical
        ]
        if self.numeric:
            values = keras.ops.stack([keras.ops.cast(inputs[name], "float32") for name in self.numeric], axis=-1)
            mean = np.asarray(self.numeric_mean, dtype="float32")
            scale = np.sqrt(np.asarray(self.numeric_variance, dtype="float32"))
            parts.append((values - mean) / scale)
        return keras.ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

    def _pooled(self, name, ids):
        """Mean of the embeddings of the ids >= 0 in each row; -1 is padding."""
        present = keras.ops.cast(keras.ops.greater_equal(ids, 0), "float32")
        vectors = self.embeddings[name](keras.ops.maximum(ids, 0)) * keras.ops.expand_dims(present, -1)
        count = keras.ops.maximum(keras.ops.sum(present, axis=1, keepdims=True), 1.0)
        return keras.ops.sum(vectors, axis=1) / count

    def compute_output_shape(self, input_shape: dict[str, tuple]) -> tuple:
        return (None, self.output_dim)

    @property
    def output_dim(self) -> int:
        return len(self.categorical) * self.embedding_dim + len(self.numeric)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "categorical": self.categorical,
            "numeric": list(self.numeric),
            "embedding_dim": self.embedding_dim,
            "numeric_mean": list(self.numeric_mean),
            "numeric_variance": list(self.numeric_variance),
            "lists": list(self.lists),
        }


def _per_feature(values, names, default, argument):
    if values is None:
        return [default] * len(names)
    values = [float(v) for v in values]
    if len(values) != len(names):
        raise ValueError(f"`{argument}` needs one value per numeric feature {list(names)}. Received: {values}")
    return values
