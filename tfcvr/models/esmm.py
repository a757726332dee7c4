"""ESMM: CTR and CTCVR = pCTR * pCVR over the entire impression space."""

import tensorflow as tf

from tfcvr.models import registry
from tfcvr.models.base import CTRLossOptions, CVRModel


@registry.register("esmm")
class ESMM(CVRModel):
    """Entire Space Multi-task Model (Ma et al., SIGIR 2018, https://arxiv.org/abs/1804.07931).

    As Xu et al. (WWW 2022, https://doi.org/10.1145/3485447.3512081) state it in Eq. 3.

        min (1/|D|) Σ_D [ δ(y_click·y_conv, pCTR·pCVR) + γ δ(y_click, pCTR) ]

    pCVR is never fit directly: it is learned through the CTCVR product on
    every impression, clicked or not. `conversion` is post-click, so
    y_click·y_conv equals the conversion label.

    Args:
      ctr_loss_weight: γ, the weight of the CTR loss. Default 1.0.
      **kwargs: `CVRModel` arguments.
    """

    options_class = CTRLossOptions
    options: CTRLossOptions

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        ctcvr_loss = self.ctcvr_log_loss(labels, predictions["ctcvr"])
        ctr_loss = self.ctr_log_loss(labels, predictions)
        return {
            "loss": ctcvr_loss + self.options.ctr_loss_weight * ctr_loss,
            "ctcvr_loss": ctcvr_loss,
            "ctr_loss": ctr_loss,
        }
