"""DCMT: factual and counterfactual CVR towers over the entire space."""

import dataclasses

import tensorflow as tf

from tfcvr import losses
from tfcvr.models import registry
from tfcvr.models.counterfactual import CounterfactualModel, CounterfactualOptions


@dataclasses.dataclass(frozen=True, kw_only=True)
class DCMTOptions(CounterfactualOptions):
    """`DCMT`'s arguments (its class docstring)."""

    constraint_loss_weight: float = 1e-3  # λ_c


@registry.register("dcmt")
class DCMT(CounterfactualModel):
    """Direct entire-space causal multi-task framework (Zhu et al., ICDE 2023, https://arxiv.org/abs/2302.06141).

    As DDPO's paper describes it (Su et al., SIGIR 2024, https://doi.org/10.1145/3626772.3657817, §1 and §4.2) and
    NISE's PyTorch port implements it (docs/methods.md, section "dcmt"): a
    factual CVR tower r̂ learns on clicked impressions with 1/ô, a
    counterfactual CVR tower r̂* learns the opposite label 1 − r on unclicked
    impressions with 1/(1 − ô) (unclicked rows are
    counterfactual non-conversions, so their target is 1), and a constraint
    ties the two towers together:

        L = L_CTR + (1/|D|) Σ_D o·δ(r, r̂)/ô + (1/|D|) Σ_D (1−o)·δ(1−r, r̂*)/(1−ô)
            + λ_c (1/|D|) Σ_D |r̂ + r̂* − 1| + L_CTCVR

    Inference serves the factual tower.

    Args:
      constraint_loss_weight: λ_c. Default 1e-3, the port's value.
      **kwargs: `CounterfactualModel` (propensity, τ, normalisation, ...) and
        `CVRModel` arguments.
    """

    task_names = ("ctr", "cvr", "counterfactual_cvr")
    options_class = DCMTOptions
    options: DCMTOptions

    @staticmethod
    def head_initial_logit(task, spec):
        # r̂* learns 1 − r: it starts at 1 − CVR, where the constraint r̂ + r̂* = 1 holds.
        return -spec.log_odds("cvr") if task == "counterfactual_cvr" else None

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        terms = self.click_losses(labels, predictions)
        click, conversion = labels["click"], tf.cast(labels["conversion"], tf.float32)
        propensity, cvr = predictions["propensity"], predictions["cvr"]
        counterfactual_cvr = predictions["counterfactual_cvr"]
        terms["cvr_loss"] = self.ipw_loss(click, propensity, losses.binary_crossentropy(conversion, cvr))
        terms["counterfactual_loss"] = self.ipw_loss.non_click(
            click, propensity, losses.binary_crossentropy(1.0 - conversion, counterfactual_cvr)
        )
        terms["constraint_loss"] = tf.reduce_mean(tf.abs(cvr + counterfactual_cvr - 1.0))
        terms["ctcvr_loss"] = self.ctcvr_log_loss(labels, predictions["ctcvr"])
        terms["loss"] = (
            self.click_loss_total(terms)
            + terms["cvr_loss"]
            + terms["counterfactual_loss"]
            + self.options.constraint_loss_weight * terms["constraint_loss"]
            + terms["ctcvr_loss"]
        )
        return terms
