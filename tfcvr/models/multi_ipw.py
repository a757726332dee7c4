"""Multi-IPW, ESCM²-IPW and naive IPW: inverse-propensity-weighted CVR loss."""

import dataclasses

import tensorflow as tf

from tfcvr import losses
from tfcvr.models import registry
from tfcvr.models.base import Preset
from tfcvr.models.counterfactual import CounterfactualModel, CounterfactualOptions


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultiIPWOptions(CounterfactualOptions):
    """`MultiIPW`'s arguments (its class docstring)."""

    cvr_loss_weight: float = 1.0  # λ_cf
    ctcvr_loss_weight: float = 0.0  # λ_g


@registry.register("multi_ipw")
class MultiIPW(CounterfactualModel):
    """Multi-IPW (Zhang et al., WWW 2020, https://doi.org/10.1145/3366423.3380037, Eq. 5).

        L = γ L_CTR + λ_cf E_IPW + λ_g L_CTCVR,
        E_IPW = (1/|D|) Σ_D o·δ(r, r̂)/ô,  ô = the CTR head (propensity="shared")

    With λ_g > 0 this is ESCM²-IPW (Fei et al., AAAI 2025, https://arxiv.org/abs/2502.15687, Eq. 6 plus the
    CTCVR risk of their Eq. 5).

    Args:
      cvr_loss_weight: λ_cf, weight of the IPW CVR risk. Default 1.0.
      ctcvr_loss_weight: λ_g, weight of the CTCVR risk. Default 0.0 (Multi-IPW).
      **kwargs: `CounterfactualModel` arguments (propensity source, τ,
        clipping, normalisation, detaching, γ) and `CVRModel` arguments.
    """

    options_class = MultiIPWOptions
    options: MultiIPWOptions

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        terms = self.click_losses(labels, predictions)
        error = losses.binary_crossentropy(labels["conversion"], predictions["cvr"])
        terms["cvr_loss"] = self.ipw_loss(labels["click"], predictions["propensity"], error)
        terms["ctcvr_loss"] = self.ctcvr_log_loss(labels, predictions["ctcvr"])
        terms["loss"] = (
            self.click_loss_total(terms)
            + self.options.cvr_loss_weight * terms["cvr_loss"]
            + self.options.ctcvr_loss_weight * terms["ctcvr_loss"]
        )
        return terms


@registry.register("ipw_naive")
class NaiveIPW(MultiIPW):
    """Naive IPW (Zhang et al., WWW 2020, §4.2.2): the CVR loss weighted by 1/ô from a
    separately trained propensity model that shares nothing with the CVR model.
    `MultiIPW` with `propensity="separate"`."""

    preset = Preset(parent="multi_ipw", fixed={"propensity": "separate"})


@registry.register("escm2_ipw")
class ESCM2IPW(MultiIPW):
    """ESCM²-IPW (Wang et al., SIGIR 2022,
    https://doi.org/10.1145/3477495.3531972; as Fei et al., AAAI 2025, Eq. 5-6 state
    it): Multi-IPW plus ESMM's CTCVR risk (`ctcvr_loss_weight` > 0). Default
    weights λ_cf = λ_g = 0.5 are those of the authors' released PaddleRec code
    (docs/methods.md, section "escm2_ipw")."""

    preset = Preset(
        parent="multi_ipw",
        positive=("ctcvr_loss_weight",),
        defaults={"cvr_loss_weight": 0.5, "ctcvr_loss_weight": 0.5},
    )
