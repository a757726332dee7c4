"""Naive: CTR on all impressions, CVR on clicked impressions only."""

import tensorflow as tf

from tfcvr import losses
from tfcvr.models import registry
from tfcvr.models.base import CTRLossOptions, CVRModel


@registry.register("naive")
class Naive(CVRModel):
    """The joint CTR/CVR model of Xu et al. (WWW 2022, https://doi.org/10.1145/3485447.3512081), §2.2.2, Eq. 2.

        min (1/|D_click|) Σ_{D_click} δ(y_conv, pCVR) + γ (1/|D|) Σ_D δ(y_click, pCTR)

    The CVR tower learns from clicked impressions only: the sample selection
    bias every other method corrects. The towers share embeddings and backbone.
    Also registered as `joint`, the name that paper gives this baseline (§4.1.2).

    Args:
      ctr_loss_weight: γ, the weight of the CTR loss. Default 1.0.
      **kwargs: `CVRModel` arguments.
    """

    options_class = CTRLossOptions
    options: CTRLossOptions

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        cvr_loss = losses.masked_mean(
            losses.binary_crossentropy(labels["conversion"], predictions["cvr"]), labels["click"]
        )
        ctr_loss = self.ctr_log_loss(labels, predictions)
        return {"loss": cvr_loss + self.options.ctr_loss_weight * ctr_loss, "cvr_loss": cvr_loss, "ctr_loss": ctr_loss}
