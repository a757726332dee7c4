"""Recalibration-in-the-large: the served pCTR and pCVR shifted on the logit scale by two fitted offsets.

The offsets are set after training by `tfcvr.models.refit_intercepts` so that, over the training impressions,
Σ pCTR = Σ clicks (and, with target "ctcvr", Σ pCTR·pCVR = Σ conversions): calibration-in-the-large by updating
the intercept, as in Steyerberg, "Clinical Prediction Models", 2nd ed., Springer 2019,
https://doi.org/10.1007/978-3-030-16399-0.
"""

import keras

# Probabilities are clipped into (EPSILON, 1 - EPSILON) before the logit, as Keras' binary cross-entropy clips them.
EPSILON = 1e-7


def shift_logit(probability, offset):
    """σ(logit(p) + offset); p itself, bit for bit, where offset is 0 (a model never refitted serves what it did)."""
    clipped = keras.ops.clip(probability, EPSILON, 1.0 - EPSILON)
    shifted = keras.ops.sigmoid(keras.ops.log(clipped) - keras.ops.log1p(-clipped) + offset)
    return keras.ops.where(keras.ops.equal(offset, 0.0), probability, shifted)


@keras.saving.register_keras_serializable(package="tfcvr")
class InterceptCalibration(keras.layers.Layer):
    """[ctr, cvr] -> [σ(logit(ctr) + ctr_offset), σ(logit(cvr) + cvr_offset)] at inference; unchanged in training.

    The two offsets are non-trainable scalar weights, 0 until
    `tfcvr.models.refit_intercepts` fits them on the training data after
    training. A method's objective always sees its own heads (the layer
    passes its inputs through when `training` is true), so refitting never
    changes what or how a method learns, only what it serves: evaluation,
    `predict`, the exported SavedModel. The offsets are model weights, saved
    with `model.save` and in the export; checkpoints taken during training
    hold them as training left them, and a warm start does not carry them
    over (each run refits its own).

    Example:
    >>> layer = InterceptCalibration()
    >>> ctr, cvr = layer([keras.ops.convert_to_tensor([0.5]), keras.ops.convert_to_tensor([0.2])])
    >>> float(ctr[0]), round(float(cvr[0]), 6)
    (0.5, 0.2)
    """

    def build(self, input_shape):
        self.ctr_offset = self.add_weight(shape=(), initializer="zeros", trainable=False, name="ctr_offset")
        self.cvr_offset = self.add_weight(shape=(), initializer="zeros", trainable=False, name="cvr_offset")

    def load_own_variables(self, store):
        # A model saved before the served intercepts existed holds none: they stay at 0, its heads as trained.
        if len(store.keys()):
            super().load_own_variables(store)

    def call(self, inputs, training=None):
        ctr, cvr = inputs
        if training:
            return [ctr, cvr]
        return [shift_logit(ctr, self.ctr_offset), shift_logit(cvr, self.cvr_offset)]

    def compute_output_shape(self, input_shape):
        return list(input_shape)
