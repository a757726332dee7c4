import math

import keras
import numpy as np
import tensorflow as tf

from tfcvr.layers import InterceptCalibration


def _layer(ctr_offset, cvr_offset):
    layer = InterceptCalibration()
    layer.build([(None,), (None,)])
    layer.ctr_offset.assign(ctr_offset)
    layer.cvr_offset.assign(cvr_offset)
    return layer


def test_inference_shifts_each_logit_by_its_offset():
    # logit(0.5) + log 3 = log 3 -> 3/4; logit(0.2) - log 4 = log(1/4) - log 4 = log(1/16) -> 1/17.
    layer = _layer(math.log(3.0), -math.log(4.0))
    ctr, cvr = layer([tf.constant([0.5, 0.25]), tf.constant([0.2, 0.5])], training=False)
    np.testing.assert_allclose(ctr.numpy(), [0.75, 0.5], rtol=1e-6)  # logit(1/4) + log 3 = 0 -> 1/2
    np.testing.assert_allclose(cvr.numpy(), [1 / 17, 0.2], rtol=1e-6)  # logit(1/2) - log 4 -> 1/5


def test_training_passes_the_heads_through_and_gradients_flow_unchanged():
    layer = _layer(1.5, -2.0)
    ctr_in, cvr_in = tf.Variable([0.3, 0.6]), tf.Variable([0.1, 0.9])
    with tf.GradientTape() as tape:
        ctr, cvr = layer([ctr_in, cvr_in], training=True)
        total = tf.reduce_sum(ctr * cvr)
    np.testing.assert_array_equal(ctr.numpy(), ctr_in.numpy())
    np.testing.assert_array_equal(cvr.numpy(), cvr_in.numpy())
    d_ctr, d_cvr = tape.gradient(total, [ctr_in, cvr_in])
    np.testing.assert_allclose(d_ctr.numpy(), cvr_in.numpy())
    np.testing.assert_allclose(d_cvr.numpy(), ctr_in.numpy())
    assert not layer.trainable_weights  # the offsets are fitted after training, never by an optimizer


def test_zero_offsets_serve_the_heads_bit_for_bit_even_at_saturation():
    layer = _layer(0.0, 0.0)
    values = tf.constant([0.0, 1e-9, 0.123456789, 1.0 - 1e-8, 1.0])
    ctr, cvr = layer([values, values])
    np.testing.assert_array_equal(ctr.numpy(), values.numpy())
    np.testing.assert_array_equal(cvr.numpy(), values.numpy())


def test_offsets_round_trip_through_keras_serialization():
    inputs = [keras.Input(shape=()), keras.Input(shape=())]
    model = keras.Model(inputs, InterceptCalibration(name="intercept_calibration")(inputs))
    model.get_layer("intercept_calibration").ctr_offset.assign(0.25)
    restored = keras.Model.from_config(model.get_config())
    restored.set_weights(model.get_weights())
    assert float(restored.get_layer("intercept_calibration").ctr_offset.numpy()) == 0.25


def test_a_model_saved_before_the_layer_existed_loads_with_zero_offsets():
    layer = _layer(0.0, 0.0)
    layer.load_own_variables({})  # what Keras hands a layer the saved file has no weights for
    assert float(layer.ctr_offset.numpy()) == 0.0 and float(layer.cvr_offset.numpy()) == 0.0
    layer.load_own_variables({"0": np.float32(0.5), "1": np.float32(-0.25)})
    assert float(layer.ctr_offset.numpy()) == 0.5 and float(layer.cvr_offset.numpy()) == -0.25
