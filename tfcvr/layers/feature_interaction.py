"""Explicit feature crossing between the embeddings and the backbone, through keras-rs's layers.

"cross": the cross network of DCN-V2 (Wang et al., WWW 2021, https://arxiv.org/abs/2008.13535), stacked under the
backbone (the paper's "stacked" structure). "dot": the pairwise dot interaction of DLRM (Naumov et al., 2019,
https://arxiv.org/abs/1906.00091), appended to the embeddings as DLRM concatenates it with its dense features.
"""

import keras
import keras_rs
import tensorflow as tf

INTERACTIONS = ("none", "cross", "dot")


class _NamedFeatureCross(keras_rs.layers.FeatureCross):
    """keras-rs's `FeatureCross` with its dense layers named.

    keras-rs leaves them to Keras' per-process numbering (dense, dense_1, ...),
    so a weight's path, by which checkpoints and warm starts find it, would
    depend on what the process had built before.
    """

    def build(self, input_shape: tuple) -> None:
        super().build(input_shape)  # creates the dense layers, unbuilt: their weights take the names set here
        self.dense.name = "dense"
        if self.projection_dim is not None:
            self.down_proj_dense.name = "down_projection"


@keras.saving.register_keras_serializable(package="tfcvr")
class CrossNetwork(keras.layers.Layer):
    """DCN-V2's cross network: x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l for l = 0..num_layers-1 (the paper's Eq. 1).

    Each layer is a `keras_rs.layers.FeatureCross`; W_l is full rank
    ([D, D]) by default, or U_l V_l^T of rank `projection_dim` (Eq. 2: the
    paper's low-rank cross, the choice for a wide input).

    Args:
      num_layers: cross layers stacked (the highest crossed degree is num_layers + 1).
      projection_dim: None for full-rank W_l; else their rank.

    Returns [batch, D], the shape of the input.

    Example:
    >>> CrossNetwork(num_layers=2, projection_dim=3)(keras.ops.ones((4, 6))).shape
    (4, 6)
    """

    def __init__(self, num_layers=2, projection_dim=None, **kwargs):
        super().__init__(**kwargs)
        if num_layers < 1:
            raise ValueError(f"`num_layers` must be positive. Received: {num_layers}")
        if projection_dim is not None and projection_dim < 1:
            raise ValueError(f"`projection_dim` must be positive or None (full rank). Received: {projection_dim}")
        self.num_layers = num_layers
        self.projection_dim = projection_dim
        self.crosses = [_NamedFeatureCross(projection_dim=projection_dim, name=f"cross_{i}") for i in range(num_layers)]

    # No `build` or `compute_output_shape`: Keras builds the layer by running `call` on the symbolic input, which
    # builds each FeatureCross's dense layers (FeatureCross.build only creates them).
    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        crossed = inputs
        for cross in self.crosses:
            crossed = cross(inputs, crossed)
        return crossed

    def get_config(self) -> dict:
        return {**super().get_config(), "num_layers": self.num_layers, "projection_dim": self.projection_dim}


@keras.saving.register_keras_serializable(package="tfcvr")
class DotInteractionBottom(keras.layers.Layer):
    """The input [x, <e_i, e_j> for i < j]: the embeddings and every pairwise dot product of the features' vectors.

    The input is `FeatureEmbedding`'s output: `num_categorical` embeddings of
    width `embedding_dim`, then `num_numeric` standardised values. Each
    categorical embedding is one vector e_i; the numeric values together are
    projected to one more (DLRM's dense features through its bottom MLP, here
    one linear layer). The dot products are `keras_rs.layers.DotInteraction`'s.

    Returns [batch, D + F (F - 1) / 2], F = num_categorical (+ 1 with numerics).

    Example:
    >>> DotInteractionBottom(num_categorical=2, embedding_dim=4, num_numeric=1)(keras.ops.ones((3, 9))).shape
    (3, 12)
    """

    def __init__(self, num_categorical, embedding_dim, num_numeric=0, **kwargs):
        super().__init__(**kwargs)
        vectors = num_categorical + (1 if num_numeric else 0)
        if vectors < 2:
            raise ValueError(
                f"The dot interaction needs at least two feature vectors; the schema gives {num_categorical} "
                f"categorical feature(s) and {num_numeric} numeric one(s) ({vectors} vector(s))."
            )
        self.num_categorical = num_categorical
        self.embedding_dim = embedding_dim
        self.num_numeric = num_numeric
        self.numeric_projection = keras.layers.Dense(embedding_dim, name="numeric_projection") if num_numeric else None
        self.interaction = keras_rs.layers.DotInteraction(name="dot_interaction")

    @property
    def num_vectors(self) -> int:
        return self.num_categorical + (1 if self.num_numeric else 0)

    def build(self, input_shape: tuple) -> None:
        if self.numeric_projection is not None:
            self.numeric_projection.build(tuple(input_shape[:-1]) + (self.num_numeric,))

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        width = self.num_categorical * self.embedding_dim
        vectors = [
            inputs[:, i * self.embedding_dim : (i + 1) * self.embedding_dim] for i in range(self.num_categorical)
        ]
        if self.numeric_projection is not None:
            vectors.append(self.numeric_projection(inputs[:, width:]))
        return keras.ops.concatenate([inputs, self.interaction(vectors)], axis=-1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        pairs = self.num_vectors * (self.num_vectors - 1) // 2
        return tuple(input_shape[:-1]) + (input_shape[-1] + pairs,)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_categorical": self.num_categorical,
            "embedding_dim": self.embedding_dim,
            "num_numeric": self.num_numeric,
        }


def make_interaction(
    name: str,
    num_categorical: int,
    embedding_dim: int,
    num_numeric: int,
    cross_layers: int = 2,
    cross_rank: int | None = None,
    name_prefix: str = "",
) -> keras.layers.Layer | None:
    """The interaction `name` over `FeatureEmbedding`'s output ("none": None, the embeddings go to the backbone).

    `name_prefix` names the layer of a second network (a teacher's).
    """
    if name == "none":
        return None
    if name == "cross":
        return CrossNetwork(num_layers=cross_layers, projection_dim=cross_rank, name=f"{name_prefix}cross_network")
    if name == "dot":
        return DotInteractionBottom(
            num_categorical, embedding_dim, num_numeric, name=f"{name_prefix}dot_interaction_bottom"
        )
    raise ValueError(f"Unknown interaction {name!r}; expected one of {list(INTERACTIONS)}.")
