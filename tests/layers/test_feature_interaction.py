"""The feature interactions by hand: DCN-V2's cross network and DLRM's pairwise dot products, from keras-rs."""

import keras
import numpy as np
import pytest

from tfcvr.layers import CrossNetwork, DotInteractionBottom, make_interaction


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


@pytest.mark.parametrize("rank", [None, 2])
def test_cross_network_is_x0_times_w_x_plus_b_plus_x(rank):
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(3, 5)).astype("float32")
    network = CrossNetwork(num_layers=2, projection_dim=rank, name="cross_network")
    crossed = _numpy(network(x0))
    x = x0
    for cross in network.crosses:
        kernel, bias = (_numpy(w) for w in cross.dense.weights)
        # Eq. 1: full-rank W; Eq. 2: W = U V^T, the down-projection first.
        projected = x if rank is None else x @ _numpy(cross.down_proj_dense.kernel)
        x = x0 * (projected @ kernel + bias) + x
    np.testing.assert_allclose(crossed, x, rtol=1e-5, atol=1e-5)
    shapes = {w.path: tuple(w.shape) for w in network.weights}
    if rank is None:
        assert shapes["cross_network/cross_0/dense/kernel"] == (5, 5)
    else:
        assert shapes["cross_network/cross_1/down_projection/kernel"] == (5, 2)
        assert shapes["cross_network/cross_1/dense/kernel"] == (2, 5)


def test_weight_paths_do_not_depend_on_what_was_built_before():
    # keras-rs names its dense layers by Keras' per-process counter; checkpoints and warm starts find weights by path.
    first = [w.path for w in _built(CrossNetwork(2, 3, name="c"))]
    keras.layers.Dense(2)  # another auto-named layer in between
    assert [w.path for w in _built(CrossNetwork(2, 3, name="c"))] == first
    assert first == [
        "c/cross_0/down_projection/kernel",
        "c/cross_0/dense/kernel",
        "c/cross_0/dense/bias",
        "c/cross_1/down_projection/kernel",
        "c/cross_1/dense/kernel",
        "c/cross_1/dense/bias",
    ]


def _built(layer):
    layer(keras.Input((6,)))
    return layer.weights


def test_dot_interaction_appends_every_pairwise_product_of_the_feature_vectors():
    rng = np.random.default_rng(2)
    # Two categorical embeddings of width 3, then two standardised numerics.
    embedded = rng.normal(size=(4, 8)).astype("float32")
    bottom = DotInteractionBottom(num_categorical=2, embedding_dim=3, num_numeric=2)
    output = _numpy(bottom(embedded))
    kernel, bias = (_numpy(w) for w in bottom.numeric_projection.weights)
    vectors = [embedded[:, 0:3], embedded[:, 3:6], embedded[:, 6:8] @ kernel + bias]
    # keras-rs's order: the lower triangle of the interaction matrix, row by row.
    pairs = [(1, 0), (2, 0), (2, 1)]
    expected = np.stack([(vectors[i] * vectors[j]).sum(axis=1) for i, j in pairs], axis=1)
    np.testing.assert_allclose(output[:, :8], embedded)
    np.testing.assert_allclose(output[:, 8:], expected, rtol=1e-5, atol=1e-5)
    assert bottom.compute_output_shape((None, 8)) == (None, 11)


def test_the_dot_interaction_needs_two_vectors_and_unknown_names_are_refused():
    with pytest.raises(ValueError, match="at least two feature vectors; the schema gives 1 categorical"):
        DotInteractionBottom(num_categorical=1, embedding_dim=4, num_numeric=0)
    assert DotInteractionBottom(num_categorical=1, embedding_dim=4, num_numeric=3).num_vectors == 2
    assert make_interaction("none", 2, 4, 0) is None
    with pytest.raises(ValueError, match=r"Unknown interaction 'fm'; expected one of \['none', 'cross', 'dot'\]"):
        make_interaction("fm", 2, 4, 0)
    with pytest.raises(ValueError, match="`num_layers` must be positive"):
        CrossNetwork(num_layers=0)
    with pytest.raises(ValueError, match="`projection_dim` must be positive or None"):
        CrossNetwork(projection_dim=0)


def test_configs_round_trip():
    for layer in (CrossNetwork(3, 4), DotInteractionBottom(3, 4, 1)):
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
