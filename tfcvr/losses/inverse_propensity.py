"""Inverse propensity weighting (IPW) of the per-row CVR error."""

import tensorflow as tf

from tfcvr.losses.propensity_weighting import PropensityWeightedLoss


class InversePropensityLoss(PropensityWeightedLoss):
    """E_IPW = (1/|D|) Σ_D o·e / ô  (multi_ipw_dr.txt Eq. 4-5, evi.txt Eq. 6).

    `error` is the per-row CVR loss e = δ(r, r̂) over every impression; only
    clicked rows carry weight. Unbiased for the ideal loss (1/|D|) Σ_D e when ô
    is the true click propensity (Theorem 1), with the default normalisation.
    Other arguments: `PropensityWeightedLoss`.
    """

    def __call__(self, click, propensity, error, sample_mask=None) -> tf.Tensor:
        weights = self.weights(click, propensity, sample_mask)
        return tf.reduce_sum(weights * tf.cast(error, tf.float32))
