"""The doubly robust (DR) estimator of the ideal CVR loss."""

import tensorflow as tf

from tfcvr.losses.propensity_weighting import PropensityWeightedLoss, sample_mean


class DoublyRobustLoss(PropensityWeightedLoss):
    """E_DR = (1/|D|) Σ_D [ ê + o·(e − ê) / ô ]  (Zhang et al., WWW 2020,
    https://doi.org/10.1145/3366423.3380037, Eq. 8-9; Fei et al., AAAI 2025, https://arxiv.org/abs/2502.15687, Eq. 7).

    `error` e = δ(r, r̂) per row (only clicked rows' values matter), and
    `imputed_error` ê its imputation for every row. Unbiased when either ô is
    the true propensity or ê = e (Theorem 2). With a normalisation other than
    "none", the correction term Σ w·(e − ê) is normalised as the module
    `propensity_weighting` says, the imputed term stays a mean over the rows.
    Gradients into ê are as the caller passes it: stop them to train the
    imputation only by `ImputationLoss`.
    """

    def __call__(self, click, propensity, error, imputed_error, sample_mask=None) -> tf.Tensor:
        weights = self.weights(click, propensity, sample_mask)
        imputed_error = tf.cast(imputed_error, tf.float32)
        correction = tf.reduce_sum(weights * (tf.cast(error, tf.float32) - imputed_error))
        return sample_mean(imputed_error, sample_mask) + correction
