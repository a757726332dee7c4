import keras
import numpy as np
import pytest
import tensorflow as tf

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


def test_distinct_weights_and_biases_against_numpy():
    """Each of θ_q, θ_k, θ_v with its own kernel and bias: Eq. 12-13 written out in NumPy, and every weight trained."""
    rng = np.random.default_rng(0)
    propensity, cvr = rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(5, 3)).astype("float32")
    layer = CausalTransfer()
    layer.build([(None, 3), (None, 3)])
    weights = {}
    for dense in (layer.query, layer.key, layer.value):
        weights[dense.name] = [rng.normal(size=(3, 3)).astype("float32"), rng.normal(size=3).astype("float32")]
        dense.set_weights(weights[dense.name])

    def project(name, x):
        kernel, bias = weights[name]
        return x @ kernel + bias

    query = project("query", cvr)
    tokens = [propensity, cvr]
    scores = np.stack([np.sum(query * project("key", t), axis=-1) for t in tokens], axis=-1) / np.sqrt(3)
    attention = np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)
    expected = sum(attention[:, [j]] * project("value", t) for j, t in enumerate(tokens))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([propensity, cvr])), expected, rtol=1e-4, atol=1e-5)

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer([tf.constant(propensity), tf.constant(cvr)]) ** 2)
    gradients = tape.gradient(loss, layer.trainable_variables)
    assert len(gradients) == 6 and all(g is not None and np.any(g.numpy() != 0) for g in gradients)
