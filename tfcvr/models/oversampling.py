"""Oversampling: converted clicks count k times in the click-space CVR loss."""

import dataclasses
import math

import keras
import tensorflow as tf

from tfcvr import losses
from tfcvr.models import registry
from tfcvr.models.base import CTRLossOptions, CVRModel, ModelSpec


@dataclasses.dataclass(frozen=True, kw_only=True)
class OversamplingOptions(CTRLossOptions):
    """`Oversampling`'s arguments (its class docstring)."""

    oversampling_rate: int = 5  # k
    correct_prediction: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.oversampling_rate < 1:
            raise ValueError(f"`oversampling_rate` k must be at least 1. Received: {self.oversampling_rate}")


@registry.register("oversampling")
class Oversampling(CVRModel):
    """Oversampling (Zhang et al., WWW 2020,
    https://doi.org/10.1145/3366423.3380037, §4.2.1): the minority class (conversion = 1)
    duplicated k times in the click-space CVR loss, here as a weight k, which is
    the same loss as repeating those rows without growing the batch:

        L = Σ_{D_click} w·δ(r, r̂_k) / Σ_{D_click} w + γ (1/|D|) Σ_D δ(o, ô),  w = k if r = 1 else 1

    r̂_k, the head trained on the oversampled rows, estimates the odds of
    conversion times k. Served as it is (the paper's baseline), it
    over-predicts by about k on the rare conversions. By default the served
    pCVR undoes the oversampling, the prior correction of case-control
    sampling (King and Zeng, "Logistic Regression in Rare Events Data",
    Political Analysis 2001, https://doi.org/10.1093/oxfordjournals.pan.a004868):
    pCVR = sigmoid(logit(r̂_k) − log k). Training is unchanged.

    Args:
      oversampling_rate: k. Default 5, the paper's setting.
      correct_prediction: serve the corrected pCVR (default) or r̂_k (False,
        the paper's baseline).
      ctr_loss_weight: γ. Default 1.0.
      **kwargs: `CVRModel` arguments.
    """

    options_class = OversamplingOptions
    options: OversamplingOptions

    def build_outputs(
        self, inputs: dict[str, keras.KerasTensor], task_representations: dict[str, keras.KerasTensor], spec: ModelSpec
    ) -> dict[str, keras.KerasTensor]:
        ctr = self.task_tower("ctr", task_representations["ctr"], spec)
        options = self.options
        # r̂_k estimates the odds of conversion times k: it starts at the base rate's log-odds + log k.
        oversampled_log_odds = spec.log_odds("cvr") + math.log(options.oversampling_rate)
        logit = self.task_tower(
            "cvr", task_representations["cvr"], spec, activation=None, initial_logit=oversampled_log_odds
        )
        shift = math.log(options.oversampling_rate) if options.correct_prediction else 0.0
        cvr = keras.ops.sigmoid(logit - shift)
        return {
            "ctr": ctr,
            "cvr": cvr,
            "oversampled_cvr": keras.ops.sigmoid(logit),
            "ctcvr": keras.ops.multiply(ctr, cvr),
        }

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        conversion = tf.cast(labels["conversion"], tf.float32)
        copies = tf.cast(labels["click"], tf.float32) * (1.0 + (self.options.oversampling_rate - 1.0) * conversion)
        # masked_mean with weights: Σ w·δ / Σ w over the clicked rows.
        cvr_loss = losses.masked_mean(losses.binary_crossentropy(conversion, predictions["oversampled_cvr"]), copies)
        ctr_loss = self.ctr_log_loss(labels, predictions)
        return {"loss": cvr_loss + self.options.ctr_loss_weight * ctr_loss, "cvr_loss": cvr_loss, "ctr_loss": ctr_loss}
