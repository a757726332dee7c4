"""The base of the propensity-weighted methods: a click propensity and its weighting."""

import dataclasses
from typing import Any

import keras
import tensorflow as tf

from tfcvr import losses
from tfcvr.layers import MLP
from tfcvr.models.base import CTRLossOptions, CVRModel, ModelSpec

PROPENSITY_SOURCES = ("shared", "separate")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CounterfactualOptions(CTRLossOptions):
    """`CounterfactualModel`'s arguments (its class docstring)."""

    propensity: str = "shared"
    propensity_floor: float = 0.01  # τ
    max_weight: float | None = None
    normalization: str = "none"
    detach_propensity: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.propensity not in PROPENSITY_SOURCES:
            raise ValueError(f"`propensity` must be one of {PROPENSITY_SOURCES}. Received: {self.propensity!r}")
        losses.InversePropensityLoss(**self.weighting)  # validates the weighting before the graph is built

    @property
    def weighting(self) -> dict[str, Any]:
        """The arguments of `tfcvr.losses.PropensityWeightedLoss` (τ, clip, normalisation, detach)."""
        return dict(
            propensity_floor=self.propensity_floor,
            max_weight=self.max_weight,
            normalization=self.normalization,
            detach_propensity=self.detach_propensity,
        )


class CounterfactualModel(CVRModel):
    """A `CVRModel` that outputs a click `propensity` ô for inverse weighting.

    The propensity is either the model's own CTR head ("shared", Multi-IPW's
    choice, Zhang et al., WWW 2020,
    https://doi.org/10.1145/3366423.3380037, Eq. 5) or a separately trained click model with
    its own embeddings and tower ("separate": the independent propensity model
    of naive IPW, §4.2.2, trained by log loss on clicks so its probabilities
    stay calibrated). Evaluation reports the propensity's AUC and calibration
    because IPW and DR are only as good as ô.

    Args:
      propensity: "shared" or "separate".
      propensity_floor: IPW bound τ (Zhang et al., WWW 2020, §5.3): ô is floored at τ
        before inverting. The paper gives no value, only τ within
        [min, mean] of the propensities; default 0.01.
      max_weight, normalization, detach_propensity: see
        `tfcvr.losses.PropensityWeightedLoss` (defaults: no clip, "none" =
        the papers' 1/|D|, detached).
      ctr_loss_weight: weight of the CTR log loss.
      **kwargs: `CVRModel` arguments.
    """

    options_class = CounterfactualOptions
    options: CounterfactualOptions

    def __init__(self, schema, **kwargs):
        super().__init__(schema, **kwargs)
        self.ipw_loss = losses.InversePropensityLoss(**self.options.weighting)

    def build_outputs(
        self, inputs: dict[str, keras.KerasTensor], task_representations: dict[str, keras.KerasTensor], spec: ModelSpec
    ) -> dict[str, keras.KerasTensor]:
        outputs = super().build_outputs(inputs, task_representations, spec)
        if self.options.propensity == "shared":
            outputs["propensity"] = outputs["ctr"]
        else:
            embedded = self.feature_embedding(spec, name="propensity_embedding")(inputs)
            hidden = MLP(spec.hidden_units, dropout=spec.dropout, name="propensity_bottom")(embedded)
            outputs["propensity"] = self.task_tower("propensity", hidden, spec, initial_logit=spec.log_odds("ctr"))
        return outputs

    def click_losses(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict:
        """CTR log loss, plus the separate propensity model's own log loss when there is one."""
        terms = {"ctr_loss": self.ctr_log_loss(labels, predictions)}
        if self.options.propensity == "separate":
            terms["propensity_loss"] = tf.reduce_mean(
                losses.binary_crossentropy(labels["click"], predictions["propensity"])
            )
        return terms

    def click_loss_total(self, terms: dict[str, tf.Tensor]) -> tf.Tensor:
        return self.options.ctr_loss_weight * terms["ctr_loss"] + terms.get("propensity_loss", 0.0)
