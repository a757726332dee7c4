"""The base of the propensity-weighted loss family: floor, clip, normalisation, detaching.

Every estimator here is a weighted sum Σ_i w_i · x_i over the rows of a batch,
with w_i built from the click o_i and the click propensity ô_i:

    raw_i = m_i · o_i / max(ô_i, floor), then min(raw_i, max_weight) if set

and normalised one of three ways (docs/methods.md, section "Propensity weighting",
lists who uses which):

* "none" (default; Zhang et al., WWW 2020,
https://doi.org/10.1145/3366423.3380037, Eq. 4-5; Fei et al., AAAI 2025, https://arxiv.org/abs/2502.15687, Eq. 6):
  w_i = raw_i / Σ_j m_j, the 1/|D| of the papers — unbiased when ô is the true
  propensity.
* "click_count" (ESCM² PaddleRec static code): w_i = raw_i / Σ_j m_j o_j.
* "clicked_rows" (self-normalised, Su et al., SIGIR 2024,
https://doi.org/10.1145/3626772.3657817, Eq. 15): w_i = raw_i / Σ_j raw_j.

m_i is an optional sample mask (1 = row in the sample, e.g. after Multi-DR's
under-sampling of unclicked rows); without it every row counts. The weights are
detached from the propensity by default, so the CVR term never trains the CTR
tower (nearly every public code does this; that docs section names the
exceptions).
"""

import tensorflow as tf

NORMALIZATIONS = ("none", "click_count", "clicked_rows")


class PropensityWeightedLoss:
    """Owns the weights; each variant states its estimator in `__call__`.

    Args:
      propensity_floor: lower bound on ô before inverting (Multi-IPW's IPW
        bound τ, Zhang et al., WWW 2020, §5.3). Default 1e-6, the floor of the
        ESCM²/DDPO code.
      max_weight: upper clip of 1/ô (ESCM² code: 15), applied before
        normalisation. Default None: no clip.
      normalization: "none", "click_count" or "clicked_rows" (see module doc).
      detach_propensity: stop gradients from the weights into ô. Default True.
    """

    def __init__(self, propensity_floor=1e-6, max_weight=None, normalization="none", detach_propensity=True):
        if not 0.0 < propensity_floor <= 1.0:
            raise ValueError(f"`propensity_floor` must be in (0, 1]. Received: {propensity_floor}")
        if max_weight is not None and max_weight < 1.0:
            raise ValueError(f"`max_weight` must be at least 1 (or None). Received: {max_weight}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"`normalization` must be one of {NORMALIZATIONS}. Received: {normalization!r}")
        self.propensity_floor = propensity_floor
        self.max_weight = max_weight
        self.normalization = normalization
        self.detach_propensity = detach_propensity

    def weights(self, click: tf.Tensor, propensity: tf.Tensor, sample_mask: tf.Tensor | None = None) -> tf.Tensor:
        """w_i of the module docstring, shape [batch]."""
        click = tf.cast(click, tf.float32)
        propensity = tf.cast(propensity, tf.float32)
        mask = tf.ones_like(click) if sample_mask is None else tf.cast(sample_mask, tf.float32)
        raw = mask * click / tf.maximum(propensity, self.propensity_floor)
        if self.max_weight is not None:
            raw = tf.minimum(raw, self.max_weight)
        if self.normalization == "none":
            weights = tf.math.divide_no_nan(raw, tf.reduce_sum(mask))
        elif self.normalization == "click_count":
            weights = tf.math.divide_no_nan(raw, tf.reduce_sum(mask * click))
        else:
            weights = tf.math.divide_no_nan(raw, tf.reduce_sum(raw))
        return tf.stop_gradient(weights) if self.detach_propensity else weights

    def get_config(self) -> dict:
        return {
            "propensity_floor": self.propensity_floor,
            "max_weight": self.max_weight,
            "normalization": self.normalization,
            "detach_propensity": self.detach_propensity,
        }


def sample_mean(values: tf.Tensor, sample_mask: tf.Tensor | None = None) -> tf.Tensor:
    """(1/|D|) Σ_D x over the sampled rows (all rows without a mask)."""
    values = tf.cast(values, tf.float32)
    mask = tf.ones_like(values) if sample_mask is None else tf.cast(sample_mask, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(mask * values), tf.reduce_sum(mask))
