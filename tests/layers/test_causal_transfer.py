import keras
import numpy as np
import pytest

from tfcvr.layers import CausalTransfer


def test_attention_over_the_two_features_by_hand():
    layer = CausalTransfer()
    propensity, cvr = np.array([[1.0, 0.0]], "float32"), np.array([[0.0, 2.0]], "float32")
    layer.build([(None, 2), (None, 2)])
    identity = [np.eye(2, dtype="float32"), np.zeros(2, "float32")]
    for dense in (layer.query, layer.key, layer.value):
        dense.set_weights(identity)
    output = keras.ops.convert_to_numpy(layer([propensity, cvr]))
    # scores: q = cvr = (0, 2); q·propensity = 0, q·cvr = 4; divided by sqrt(2).
    weights = np.exp([0.0, 4.0 / np.sqrt(2)]) / np.sum(np.exp([0.0, 4.0 / np.sqrt(2)]))
    np.testing.assert_allclose(output, weights[0] * propensity + weights[1] * cvr, rtol=1e-5)


def test_width_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same width"):
        CausalTransfer()([np.ones((1, 2), "float32"), np.ones((1, 3), "float32")])
