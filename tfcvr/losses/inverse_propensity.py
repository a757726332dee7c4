"""Inverse propensity weighting (IPW) of the per-row CVR error."""

import tensorflow as tf

from tfcvr.losses.propensity_weighting import PropensityWeightedLoss


class InversePropensityLoss(PropensityWeightedLoss):
    """E_IPW = (1/|D|) Σ_D o·e / ô  (Zhang et al., WWW 2020,
    https://doi.org/10.1145/3366423.3380037, Eq. 4-5; Fei et al., AAAI 2025, https://arxiv.org/abs/2502.15687, Eq. 6).

    `error` is the per-row CVR loss e = δ(r, r̂) over every impression; only
    clicked rows carry weight. Unbiased for the ideal loss (1/|D|) Σ_D e when ô
    is the true click propensity (Theorem 1), with the default normalisation.
    Other arguments: `PropensityWeightedLoss`.
    """

    def __call__(self, click, propensity, error, sample_mask=None) -> tf.Tensor:
        weights = self.weights(click, propensity, sample_mask)
        return tf.reduce_sum(weights * tf.cast(error, tf.float32))

    def non_click(self, click: tf.Tensor, propensity: tf.Tensor, error: tf.Tensor) -> tf.Tensor:
        """The same estimator over the unclicked space: weights (1 − o)/(1 − ô).

        The inverse non-click propensity of DCMT's counterfactual tower, DDPO's
        Eq. 10 and ChorusCVR's un-click-space IPW (Cheng et al., WSDM 2026, https://arxiv.org/abs/2502.08277, Eq. 10).
        """
        unclick = 1 - tf.cast(click, tf.int64)
        return self(unclick, 1.0 - tf.cast(propensity, tf.float32), error)

    def dual(self, click: tf.Tensor, propensity: tf.Tensor, error: tf.Tensor) -> tf.Tensor:
        """Click-space term with 1/ô plus un-click-space term with 1/(1 − ô), over every row."""
        return self(click, propensity, error) + self.non_click(click, propensity, error)
