"""Naive imputation: every unclicked impression is a non-conversion."""

import tensorflow as tf
from absl import logging

from tfcvr import losses
from tfcvr.models import registry
from tfcvr.models.base import CTRLossOptions, CVRModel


@registry.register("naive_imputation")
class NaiveImputation(CVRModel):
    """Naive Imputation (Zhang et al., WWW 2020,
    https://doi.org/10.1145/3366423.3380037, §4.2.1): CVR trained on the entire space
    with unclicked impressions as negatives.

        L = (1/|D|) Σ_D δ(o·r, r̂) + γ (1/|D|) Σ_D δ(o, ô)

    A baseline that is not a CVR estimator: with every unclicked row a
    negative, r̂ learns P(o·r = 1 | x), the click-and-conversion rate, a
    fraction of the observed CVR on clicked rows. It cannot be made sound
    without ceasing to be this method, so building it logs a warning;
    compare with it, do not serve it as a pCVR.

    Args:
      ctr_loss_weight: γ. Default 1.0.
      **kwargs: `CVRModel` arguments.
    """

    options_class = CTRLossOptions
    options: CTRLossOptions

    def __init__(self, schema, **kwargs):
        super().__init__(schema, **kwargs)
        logging.warning(
            "naive_imputation is a baseline: its pCVR estimates P(click and conversion), far below the "
            "CVR; compare with it, do not serve it as a pCVR."
        )

    @staticmethod
    def head_initial_logit(task, spec):
        # Its pCVR head learns click·conversion over every impression: it starts at the CTCVR.
        return spec.log_odds("ctcvr") if task == "cvr" else None

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        click_and_conversion = labels["click"] * labels["conversion"]
        cvr_loss = tf.reduce_mean(losses.binary_crossentropy(click_and_conversion, predictions["cvr"]))
        ctr_loss = self.ctr_log_loss(labels, predictions)
        return {"loss": cvr_loss + self.options.ctr_loss_weight * ctr_loss, "cvr_loss": cvr_loss, "ctr_loss": ctr_loss}
