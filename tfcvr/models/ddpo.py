"""DDPO: direct dual propensity optimization over clicked and unclicked impressions."""

import dataclasses

import keras
import tensorflow as tf

from tfcvr import losses
from tfcvr.layers import CausalTransfer
from tfcvr.models import registry
from tfcvr.models.base import ModelSpec, Preset
from tfcvr.models.counterfactual import CounterfactualModel, CounterfactualOptions

CVR_LOSS_SCALES = ("weighted_mean", "per_batch")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DDPOOptions(CounterfactualOptions):
    """`DDPO`'s arguments (its class docstring); τ and the normalisation default to the official code's."""

    use_conversion_propensity: bool = True
    use_causal_transfer: bool = True
    use_soft_labels: bool = False
    cvr_loss_scale: str = "weighted_mean"
    conversion_propensity_loss_weight: float = 1.0  # λ_c
    cvr_loss_weight: float = 1.0  # λ_r
    ctcvr_loss_weight: float = 1.0  # λ_t
    propensity_floor: float = 1e-6
    normalization: str = "clicked_rows"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.propensity != "shared":
            raise ValueError("DDPO's click propensity is its own CTR network: `propensity` must be 'shared'.")
        if self.cvr_loss_scale not in CVR_LOSS_SCALES:
            raise ValueError(f"`cvr_loss_scale` must be one of {CVR_LOSS_SCALES}. Received: {self.cvr_loss_scale!r}")


@registry.register("ddpo")
class DDPO(CounterfactualModel):
    """Direct Dual Propensity Optimization (Su et al., SIGIR 2024,
    https://doi.org/10.1145/3626772.3657817), §3 of the paper.

    Three networks on the shared embeddings: click propensity ô (the CTR
    head), conversion propensity r^c and CVR r̂, each with its own backbone
    task representation (its own bottom on shared-bottom, its own gate on
    MMoE).

    * L_c = (1/|D|) Σ_D o·δ(r, r^c): r^c learns on clicked rows only (Eq. 6).
    * Causal transfer modules fuse the click and conversion-propensity
      features into the CVR feature: f^r = θ_t(T_o(f^o, f^r), T_c(f^c, f^r))
      (Eq. 12-14, `tfcvr.layers.CausalTransfer`).
    * Soft labels: r* = sg(r^c) on unclicked rows (Eq. 8); Eq. 9's dynamic
      soft labels also on clicked unconverted rows with `use_soft_labels`.
    * L_r = Σ_O w·δ(r*, r̂) + Σ_N w'·δ(r*, r̂) with the self-normalised dual
      weights w = (1/ô)/Σ_O(1/ô), w' = (1/(1−ô))/Σ_N(1/(1−ô)) (Eq. 10, 15),
      detached, ô floored at 1e-6 as the official code does. That is the
      family's "clicked_rows" normalisation, the default here; "none" gives
      Eq. 10 without self-normalisation.
    * L_t = (1/|D|) Σ_D δ(r, ô·r̂) (Eq. 17), L_o the CTR log loss (Eq. 16).
    * L = λ_o L_o + λ_c L_c + λ_r L_r + λ_t L_t, all λ = 1 (Eq. 18).

    Args:
      use_conversion_propensity: False is Table 3's "w/o ConvN": no r^c
        network or T_c module, unclicked rows get pseudo-label 0.
      use_causal_transfer: False is "w/o CTM": the CVR tower reads f^r.
      use_soft_labels: Eq. 9's dynamic soft labels on clicked rows too
        (r* = sg(r^c) on clicked, unconverted rows). Default False: clicked
        rows keep their observed label and only unclicked rows get r^c
        (Eq. 8, Table 3's "w/o DSL"). Eq. 9 raises the clicked rows' target
        mean from CVR to CVR + (1 − CVR)·E[r^c], about 2 CVR when r^c is
        calibrated, and nothing in L pulls it back but L_t, so True
        over-predicts on clicked rows (docs/methods.md has the measurement).
        The official code keeps L_r at 1/B of the other terms ("per_batch"),
        which hides the bias by hiding the term.
      cvr_loss_scale: "weighted_mean" (default): each self-normalised sum a
        weighted average of log losses, on the scale of the other terms;
        "per_batch": that divided by the batch size, as the official code
        does (Eq. 10 read literally with Eq. 15), which makes L_r about 1/B
        of the other terms and leaves the CVR tower to L_t. A trade-off
        measured, not settled (docs/methods.md): "per_batch" spreads less
        across seeds on large logs but leaves the CVR tower unable to rank
        clicks on small ones, a collapse the default must not have.
      conversion_propensity_loss_weight, cvr_loss_weight, ctcvr_loss_weight:
        λ_c, λ_r, λ_t.
      ctr_loss_weight: λ_o.
      **kwargs: `CounterfactualModel` and `CVRModel` arguments.
    """

    task_names = ("ctr", "cvr", "conversion_propensity")
    options_class = DDPOOptions
    options: DDPOOptions

    def build_outputs(
        self, inputs: dict[str, keras.KerasTensor], task_representations: dict[str, keras.KerasTensor], spec: ModelSpec
    ) -> dict[str, keras.KerasTensor]:
        click_feature = task_representations["ctr"]
        conversion_feature = task_representations["conversion_propensity"]
        cvr_feature = task_representations["cvr"]
        use_conversion_propensity = self.options.use_conversion_propensity
        if self.options.use_causal_transfer:
            transfers = [CausalTransfer(name="click_transfer")([click_feature, cvr_feature])]
            if use_conversion_propensity:
                transfers.append(CausalTransfer(name="conversion_transfer")([conversion_feature, cvr_feature]))
            fused = keras.ops.concatenate(transfers, axis=-1) if len(transfers) > 1 else transfers[0]
            width = cvr_feature.shape[-1]
            cvr_feature = keras.layers.Dense(width, activation="relu", name="transfer_fusion")(fused)  # θ_t
        outputs = {
            "ctr": self.task_tower("ctr", click_feature, spec),
            # r̂ starts at 1/2, not at the clicked rows' base rate (the other heads do, `CVRModel.label_rates`):
            # from the base rate, fitted mostly to soft labels r* that also start there, r̂ ended constant
            # (measured, not explained: docs/methods.md).
            "cvr": self.task_tower("cvr", cvr_feature, spec, initial_logit=0.0),
        }
        if use_conversion_propensity:
            # r^c is fitted to conversions on clicks (Eq. 6): it starts at their rate.
            outputs["conversion_propensity"] = self.task_tower(
                "conversion_propensity", conversion_feature, spec, initial_logit=spec.log_odds("cvr")
            )
        outputs["ctcvr"] = keras.ops.multiply(outputs["ctr"], outputs["cvr"])
        outputs["propensity"] = outputs["ctr"]
        return outputs

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        terms = self.click_losses(labels, predictions)  # L_o, Eq. 16
        click = labels["click"]
        conversion = tf.cast(labels["conversion"], tf.float32)
        if self.options.use_conversion_propensity:
            conversion_propensity = predictions["conversion_propensity"]
            per_row = losses.binary_crossentropy(conversion, conversion_propensity)
            terms["conversion_propensity_loss"] = tf.reduce_mean(tf.cast(click, tf.float32) * per_row)  # Eq. 6
            pseudo_label = tf.stop_gradient(conversion_propensity)
        else:
            pseudo_label = tf.zeros_like(conversion)
        soft_label = self.soft_labels(click, conversion, pseudo_label)
        error = losses.binary_crossentropy(soft_label, predictions["cvr"])
        cvr_loss = self.ipw_loss.dual(click, predictions["propensity"], error)  # Eq. 10 with Eq. 15
        if self.options.cvr_loss_scale == "per_batch":
            cvr_loss = cvr_loss / tf.cast(tf.size(error), tf.float32)
        terms["cvr_loss"] = cvr_loss
        terms["ctcvr_loss"] = self.ctcvr_log_loss(labels, predictions["ctcvr"])  # Eq. 17
        terms["loss"] = (
            self.click_loss_total(terms)
            + self.options.conversion_propensity_loss_weight * terms.get("conversion_propensity_loss", 0.0)
            + self.options.cvr_loss_weight * cvr_loss
            + self.options.ctcvr_loss_weight * terms["ctcvr_loss"]
        )  # Eq. 18
        return terms

    def soft_labels(self, click: tf.Tensor, conversion: tf.Tensor, pseudo_label: tf.Tensor) -> tf.Tensor:
        """r* of Eq. 9 (or Eq. 8's labels without dynamic soft labels)."""
        if self.options.use_soft_labels:
            return tf.where(conversion > 0, conversion, pseudo_label)
        return tf.where(tf.cast(click, tf.bool), conversion, pseudo_label)


@registry.register("mmoe_ddpo")
class MMoEDDPO(DDPO):
    """MDDPO (Su et al., SIGIR 2024, Table 2, "MMoE+DDPO"): DDPO on the MMoE backbone, one gate per network."""

    backbones = ("mmoe",)

    preset = Preset(parent="ddpo", fixed={"backbone": "mmoe"})
