"""Division: CVR as the ratio of directly learned CTCVR and CTR."""

import keras
import tensorflow as tf

from tfcvr.models import registry
from tfcvr.models.base import CTRLossOptions, CVRModel, ModelSpec


@registry.register("division")
class Division(CVRModel):
    """The division baseline (Xu et al., WWW 2022,
    https://doi.org/10.1145/3485447.3512081, §4.1.2): two towers learn pCTR and pCTCVR on
    the entire space and pCVR = pCTCVR / pCTR, clipped to [0, 1] (the ratio of two
    independently fit heads can exceed 1).

        L = (1/|D|) Σ_D [ δ(o·r, pCTCVR) + γ δ(o, pCTR) ]

    The served ctcvr is pCTR · pCVR, which equals pCTCVR unless the clip acted.

    Args:
      ctr_loss_weight: γ. Default 1.0.
      **kwargs: `CVRModel` arguments.
    """

    options_class = CTRLossOptions
    options: CTRLossOptions

    task_names = ("ctr", "ctcvr_direct")

    def build_outputs(
        self, inputs: dict[str, keras.KerasTensor], task_representations: dict[str, keras.KerasTensor], spec: ModelSpec
    ) -> dict[str, keras.KerasTensor]:
        ctr = self.task_tower("ctr", task_representations["ctr"], spec)
        ctcvr_direct = self.task_tower("ctcvr", task_representations["ctcvr_direct"], spec)
        cvr = keras.ops.clip(keras.ops.divide(ctcvr_direct, keras.ops.maximum(ctr, 1e-7)), 0.0, 1.0)
        return {"ctr": ctr, "cvr": cvr, "ctcvr": keras.ops.multiply(ctr, cvr), "ctcvr_direct": ctcvr_direct}

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        ctcvr_loss = self.ctcvr_log_loss(labels, predictions["ctcvr_direct"])
        ctr_loss = self.ctr_log_loss(labels, predictions)
        return {
            "loss": ctcvr_loss + self.options.ctr_loss_weight * ctr_loss,
            "ctcvr_loss": ctcvr_loss,
            "ctr_loss": ctr_loss,
        }
