"""Multi-DR and ESCM²-DR: doubly robust CVR loss with a jointly trained error imputation."""

import dataclasses

import keras
import tensorflow as tf

from tfcvr import losses
from tfcvr.models import registry
from tfcvr.models.base import ModelSpec, Preset
from tfcvr.models.counterfactual import CounterfactualModel, CounterfactualOptions


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultiDROptions(CounterfactualOptions):
    """`MultiDR`'s arguments (its class docstring)."""

    cvr_loss_weight: float = 1.0  # λ_cf
    imputation_loss_weight: float = 1.0  # λ_imp
    ctcvr_loss_weight: float = 0.0  # λ_g
    unclicked_sampling_rate: float | None = None  # λ of §5.3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.unclicked_sampling_rate is not None and self.unclicked_sampling_rate < 1.0:
            raise ValueError(
                f"`unclicked_sampling_rate` must be at least 1 (or None). Received: {self.unclicked_sampling_rate}"
            )


@registry.register("multi_dr")
class MultiDR(CounterfactualModel):
    """Multi-DR (Zhang et al., WWW 2020, https://doi.org/10.1145/3366423.3380037, Eq. 8-9).

        L = γ L_CTR + λ_cf E_DR + λ_imp L_IMP + λ_g L_CTCVR
        E_DR  = (1/|D|) Σ_D [ ê + o·(e − ê)/ô ],  e = δ(r, r̂)
        L_IMP = (1/|D|) Σ_D o·(e − ê)²/ô

    The imputation head predicts the per-row CVR log loss e (not a CVR), so it
    is unbounded: softplus, since a sigmoid head cannot fit e > 1. It reads the
    CVR task's representation (the tasks are chained through shared
    parameters, Fig. 4) and is trained jointly, in the same step, by L_IMP;
    ê is detached inside E_DR (see `tfcvr.losses.ImputationLoss` for why). As
    Eq. 9 states it, ê does not depend on r̂, so E_DR's gradient into the CVR
    tower equals IPW's: the imputation changes the CVR tower's training only
    through the shared layers. `dr_jl` is the variant where it does not.
    With λ_g > 0 this is ESCM²-DR (Fei et al., AAAI 2025, https://arxiv.org/abs/2502.15687, Eq. 7).

    Args:
      cvr_loss_weight: λ_cf, weight of the DR CVR risk. Default 1.0.
      imputation_loss_weight: λ_imp. Default 1.0.
      ctcvr_loss_weight: λ_g, weight of the CTCVR risk. Default 0.0 (Multi-DR).
      unclicked_sampling_rate: λ of §5.3: keep every clicked row and about
        (λ − 1)·n_clicked unclicked rows of each batch in the DR terms.
        Default None: every row (the paper's best was λ = 1.5).
      **kwargs: `CounterfactualModel` and `CVRModel` arguments.
    """

    options_class = MultiDROptions
    options: MultiDROptions

    def __init__(self, schema, **kwargs):
        super().__init__(schema, **kwargs)
        self.dr_loss = losses.DoublyRobustLoss(**self.options.weighting)
        self.imputation_loss = losses.ImputationLoss(**self.options.weighting)

    def build_outputs(
        self, inputs: dict[str, keras.KerasTensor], task_representations: dict[str, keras.KerasTensor], spec: ModelSpec
    ) -> dict[str, keras.KerasTensor]:
        outputs = super().build_outputs(inputs, task_representations, spec)
        outputs["imputed_error"] = self.task_tower(
            "imputation", task_representations["cvr"], spec, activation="softplus"
        )
        return outputs

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        terms = self.click_losses(labels, predictions)
        click, propensity = labels["click"], predictions["propensity"]
        sample_mask = (
            None
            if self.options.unclicked_sampling_rate is None
            else losses.undersample_unclicked(click, self.options.unclicked_sampling_rate)
        )
        error = losses.binary_crossentropy(labels["conversion"], predictions["cvr"])
        imputed_error = predictions["imputed_error"]
        terms["cvr_loss"] = self.dr_loss(click, propensity, error, tf.stop_gradient(imputed_error), sample_mask)
        terms["imputation_loss"] = self.imputation_loss(click, propensity, error, imputed_error, sample_mask)
        terms["ctcvr_loss"] = self.ctcvr_log_loss(labels, predictions["ctcvr"])
        terms["loss"] = (
            self.click_loss_total(terms)
            + self.options.cvr_loss_weight * terms["cvr_loss"]
            + self.options.imputation_loss_weight * terms["imputation_loss"]
            + self.options.ctcvr_loss_weight * terms["ctcvr_loss"]
        )
        return terms


@registry.register("escm2_dr")
class ESCM2DR(MultiDR):
    """ESCM²-DR (Wang et al., SIGIR 2022,
    https://doi.org/10.1145/3477495.3531972; as Fei et al., AAAI 2025, Eq. 5 and 7 state
    it): Multi-DR plus ESMM's CTCVR risk (`ctcvr_loss_weight` > 0), λ_cf = λ_g =
    0.5 as in the authors' PaddleRec code (docs/methods.md, section
    "escm2_dr")."""

    preset = Preset(
        parent="multi_dr",
        positive=("ctcvr_loss_weight",),
        defaults={"cvr_loss_weight": 0.5, "ctcvr_loss_weight": 0.5},
    )
