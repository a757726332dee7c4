"""Heuristic DR: doubly robust CVR loss with a fixed imputed conversion rate η."""

import dataclasses

import tensorflow as tf

from tfcvr import losses
from tfcvr.models import registry
from tfcvr.models.counterfactual import CounterfactualModel, CounterfactualOptions


@dataclasses.dataclass(frozen=True, kw_only=True)
class HeuristicDROptions(CounterfactualOptions):
    """`HeuristicDR`'s arguments (its class docstring)."""

    smoothing_rate: float = 0.002  # η

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.smoothing_rate <= 1.0:
            raise ValueError(f"`smoothing_rate` η must be in [0, 1]. Received: {self.smoothing_rate}")


@registry.register("heuristic_dr")
class HeuristicDR(CounterfactualModel):
    """Heuristic DR (Zhang et al., WWW 2020,
    https://doi.org/10.1145/3366423.3380037, §4.2.2), the baseline for Multi-DR.

    Every impression is imputed to convert with probability η (unclicked
    items are negatives with probability 1 − η), so the imputed error is
    ê = δ(η, r̂) and

        L = γ L_CTR + E_DR,  E_DR = (1/|D|) Σ_D [ ê + o·(e − ê)/ô ].

    Args:
      smoothing_rate: η. The paper searches {0.0005, 0.001, 0.002, 0.005,
        0.01}; default 0.002, the middle of that grid.
      **kwargs: `CounterfactualModel` and `CVRModel` arguments.
    """

    options_class = HeuristicDROptions
    options: HeuristicDROptions

    def __init__(self, schema, **kwargs):
        super().__init__(schema, **kwargs)
        self.dr_loss = losses.DoublyRobustLoss(**self.options.weighting)

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        terms = self.click_losses(labels, predictions)
        cvr = predictions["cvr"]
        error = losses.binary_crossentropy(labels["conversion"], cvr)
        imputed_error = losses.binary_crossentropy(tf.fill(tf.shape(cvr), self.options.smoothing_rate), cvr)
        terms["cvr_loss"] = self.dr_loss(labels["click"], predictions["propensity"], error, imputed_error)
        terms["loss"] = self.click_loss_total(terms) + terms["cvr_loss"]
        return terms
