import keras
import numpy as np
import pytest

from tfcvr.layers import FeatureEmbedding


def test_embeds_and_standardises():
    layer = FeatureEmbedding(
        {"user": 5, "item": 3}, ["price"], embedding_dim=2, numeric_mean=[10.0], numeric_variance=[4.0]
    )
    inputs = {"user": np.array([0, 4]), "item": np.array([2, 2]), "price": np.array([10.0, 14.0], "float32")}
    output = keras.ops.convert_to_numpy(layer(inputs))
    assert output.shape == (2, 5) and layer.output_dim == 5
    user_table = keras.ops.convert_to_numpy(layer.embeddings["user"].embeddings)
    np.testing.assert_allclose(output[:, :2], user_table[[0, 4]])
    np.testing.assert_allclose(output[:, 4], [0.0, 2.0])  # (x - 10) / sqrt(4)


def test_config_round_trip():
    layer = FeatureEmbedding({"user": 5}, ["price"], embedding_dim=3, numeric_mean=[1.0], numeric_variance=[2.0])
    clone = FeatureEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(categorical={"u": 5}, embedding_dim=0), "`embedding_dim` must be positive"),
        (dict(categorical={"u": 0}), "Feature 'u': num_buckets must be positive"),
        (dict(categorical={}), "at least one categorical or numeric"),
        (dict(categorical={}, numeric=["p"], numeric_mean=[1.0, 2.0]), "one value per numeric feature"),
        (dict(categorical={}, numeric=["p"], numeric_variance=[0.0]), "`numeric_variance` must be positive"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureEmbedding(**kwargs)
