"""The base of the propensity-weighted methods: a click propensity and its weighting."""

import keras
import tensorflow as tf

from tfcvr import losses
from tfcvr.layers import MLP
from tfcvr.models.base import CVRModel, ModelSpec, with_options

PROPENSITY_SOURCES = ("shared", "separate")


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

    def __init__(
        self,
        propensity="shared",
        propensity_floor=0.01,
        max_weight: float | None = None,
        normalization="none",
        detach_propensity=True,
        ctr_loss_weight=1.0,
        **kwargs,
    ):
        if propensity not in PROPENSITY_SOURCES:
            raise ValueError(f"`propensity` must be one of {PROPENSITY_SOURCES}. Received: {propensity!r}")
        weighting = dict(
            propensity_floor=propensity_floor,
            max_weight=max_weight,
            normalization=normalization,
            detach_propensity=detach_propensity,
        )
        ipw_loss = losses.InversePropensityLoss(**weighting)  # validates the weighting before the graph is built
        super().__init__(**with_options(kwargs, propensity=propensity, ctr_loss_weight=ctr_loss_weight, **weighting))
        self.weighting = weighting
        self.ipw_loss = ipw_loss

    def build_outputs(
        self, inputs: dict[str, keras.KerasTensor], task_representations: dict[str, keras.KerasTensor], spec: ModelSpec
    ) -> dict[str, keras.KerasTensor]:
        outputs = super().build_outputs(inputs, task_representations, spec)
        if spec.options["propensity"] == "shared":
            outputs["propensity"] = outputs["ctr"]
        else:
            embedded = self.feature_embedding(spec, name="propensity_embedding")(inputs)
            hidden = MLP(spec.hidden_units, dropout=spec.dropout, name="propensity_bottom")(embedded)
            outputs["propensity"] = self.task_tower("propensity", hidden, spec, initial_logit=spec.log_odds("ctr"))
        return outputs

    def click_losses(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict:
        """CTR log loss, plus the separate propensity model's own log loss when there is one."""
        terms = {"ctr_loss": self.ctr_log_loss(labels, predictions)}
        if self.propensity == "separate":
            terms["propensity_loss"] = tf.reduce_mean(
                losses.binary_crossentropy(labels["click"], predictions["propensity"])
            )
        return terms

    def click_loss_total(self, terms: dict[str, tf.Tensor]) -> tf.Tensor:
        return self.ctr_loss_weight * terms["ctr_loss"] + terms.get("propensity_loss", 0.0)
