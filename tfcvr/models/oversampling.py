"""Oversampling: converted clicks count k times in the click-space CVR loss."""

import tensorflow as tf

from tfcvr import losses
from tfcvr.models import registry
from tfcvr.models.base import CVRModel


@registry.register("oversampling")
class Oversampling(CVRModel):
    """Oversampling (multi_ipw_dr.txt §4.2.1): the minority class (conversion = 1)
    duplicated k times in the click-space CVR loss, here as a weight k, which is
    the same loss as repeating those rows without growing the batch:

        L = Σ_{D_click} w·δ(r, r̂) / Σ_{D_click} w + γ (1/|D|) Σ_D δ(o, ô),  w = k if r = 1 else 1

    Args:
      oversampling_rate: k. Default 5, the paper's setting.
      ctr_loss_weight: γ. Default 1.0.
      **kwargs: `CVRModel` arguments.
    """

    def __init__(self, oversampling_rate=5, ctr_loss_weight=1.0, **kwargs):
        if oversampling_rate < 1:
            raise ValueError(f"`oversampling_rate` k must be at least 1. Received: {oversampling_rate}")
        super().__init__(**kwargs)
        self.oversampling_rate = oversampling_rate
        self.ctr_loss_weight = ctr_loss_weight

    def objective(self, labels, predictions):
        conversion = tf.cast(labels["conversion"], tf.float32)
        copies = tf.cast(labels["click"], tf.float32) * (1.0 + (self.oversampling_rate - 1.0) * conversion)
        # masked_mean with weights: Σ w·δ / Σ w over the clicked rows.
        cvr_loss = losses.masked_mean(losses.binary_crossentropy(conversion, predictions["cvr"]), copies)
        ctr_loss = self.ctr_log_loss(labels, predictions)
        return {"loss": cvr_loss + self.ctr_loss_weight * ctr_loss, "cvr_loss": cvr_loss, "ctr_loss": ctr_loss}

    def get_config(self):
        return {**super().get_config(), "oversampling_rate": self.oversampling_rate,
                "ctr_loss_weight": self.ctr_loss_weight}
