"""The imputation model's loss: propensity-weighted squared error of ê against e."""

import tensorflow as tf

from tfcvr.losses.propensity_weighting import PropensityWeightedLoss


class ImputationLoss(PropensityWeightedLoss):
    """L_IMP = (1/|D|) Σ_D o·(e − ê)² / ô  (Wang et al. 2019, joint learning of DR).

    The imputation target is the per-row CVR loss e = δ(r, r̂), observed on
    clicked rows only and weighted by 1/ô so the fit is unbiased over the
    entire space; e is detached, so this loss trains the imputation alone.
    Multi-DR's Algorithm 2 descends E_DR in the imputation parameters too, but
    E_DR is linear in ê with slope (1 − o/ô): unbounded below for an
    unbounded head. ESCM²'s code adds this same squared term for that reason.
    """

    def __call__(self, click, propensity, error, imputed_error, sample_mask=None) -> tf.Tensor:
        weights = self.weights(click, propensity, sample_mask)
        deviation = tf.stop_gradient(tf.cast(error, tf.float32)) - tf.cast(imputed_error, tf.float32)
        return tf.reduce_sum(weights * tf.square(deviation))
