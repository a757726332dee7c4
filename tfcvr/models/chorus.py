"""ChorusCVR: CVR and un-CVR towers that supervise each other across the entire space."""

import dataclasses

import keras
import tensorflow as tf

from tfcvr import losses
from tfcvr.models import registry
from tfcvr.models.base import ModelSpec
from tfcvr.models.counterfactual import CounterfactualModel, CounterfactualOptions


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChorusOptions(CounterfactualOptions):
    """`ChorusCVR`'s arguments (its class docstring)."""

    use_ndm: bool = True
    use_sam: bool = True
    click_space_ipw: bool = True


@registry.register("chorus")
class ChorusCVR(CounterfactualModel):
    """ChorusCVR (Cheng et al., Kuaishou, WSDM 2026, https://arxiv.org/abs/2502.08277), §2 of the paper.

    Negative-sample discrimination module (NDM): an unCVR tower; CTunCVR =
    pCTR·pUnCVR trained on every impression against o·(1 − r) (Eq. 5, 7;
    Eq. 6 as printed has a typo, CTCVR = pCTR·pCVR and CTunCVR =
    pCTR·pUnCVR), and the unCVR loss on clicks weighted by 1/ô (Eq. 8-9).
    Soft alignment module (SAM, Eq. 10), with sg = stop-gradient:

        (1/|O|) Σ_O δ(r̂, 1 − sg(ũ))/ô  + (1/|N|) Σ_N δ(r̂, 1 − sg(ũ))/(1 − ô)
      + (1/|O|) Σ_O δ(ũ, 1 − sg(r̂))/ô  + (1/|N|) Σ_N δ(ũ, 1 − sg(r̂))/(1 − ô)

    with ũ = pUnCVR, O the clicked and N the unclicked impressions. Total
    (Eq. 11): L = L_CTCVR + L_CVR + L_CTunCVR + L_unCVR + L_align.

    Normalisation. Eq. 4, 9 and 10 divide the 1/ô-weighted sums over the
    clicked rows by |O| ("click_count"): (1/|O|) Σ_O δ/ô is 1/CTR times the
    unbiased IPW estimate (1/|D|) Σ_O δ/ô of the entire-space loss
    (Zhang et al., WWW 2020, https://doi.org/10.1145/3366423.3380037, Eq. 5), so those terms outweigh the CTR and CTCVR
    losses by about 1/CTR and train the shared embeddings for them; "none"
    (1/|D| for both spaces) is the default here (measured in docs/methods.md).

    CTR loss. Eq. 11 has none: pCTR would be learned only through CTCVR and
    CTunCVR, and ô is also the propensity every IPW term divides by. So
    `ctr_loss_weight` defaults to 1 (the CTR log loss on every impression, as
    in every other method here); `ctr_loss_weight=0,
    normalization="click_count"` is Eq. 11 as printed.

    Args:
      use_ndm: the NDM losses L_CTunCVR and L_unCVR; False is the paper's
        "w/o NDM" ablation (the unCVR tower then learns only by alignment).
      use_sam: the alignment loss; False is "w/o SAM".
      click_space_ipw: weight L_CVR and L_unCVR by 1/ô (Eq. 4 and 9, the
        default: the method is "based on ESMM with IPW"); False uses the
        plain click-space losses of Eq. 2 and 8.
      **kwargs: `CounterfactualModel` (propensity, τ, normalisation, ...) and
        `CVRModel` arguments.
    """

    task_names = ("ctr", "cvr", "uncvr")
    options_class = ChorusOptions
    options: ChorusOptions

    @staticmethod
    def head_initial_logit(task, spec):
        # unCVR learns 1 − r on clicks (Eq. 8): it starts at 1 − CVR, where SAM's r̂ + ũ = 1 holds.
        return -spec.log_odds("cvr") if task == "uncvr" else None

    def build_outputs(
        self, inputs: dict[str, keras.KerasTensor], task_representations: dict[str, keras.KerasTensor], spec: ModelSpec
    ) -> dict[str, keras.KerasTensor]:
        outputs = super().build_outputs(inputs, task_representations, spec)
        outputs["ctuncvr"] = keras.ops.multiply(outputs["ctr"], outputs["uncvr"])  # Eq. 6, corrected
        return outputs

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        terms = self.click_losses(labels, predictions)
        click, conversion = labels["click"], tf.cast(labels["conversion"], tf.float32)
        propensity = predictions["propensity"]
        cvr, uncvr = predictions["cvr"], predictions["uncvr"]
        terms["ctcvr_loss"] = self.ctcvr_log_loss(labels, predictions["ctcvr"])  # Eq. 3
        terms["cvr_loss"] = self._click_space(click, propensity, losses.binary_crossentropy(conversion, cvr))
        total = self.click_loss_total(terms) + terms["ctcvr_loss"] + terms["cvr_loss"]
        if self.options.use_ndm:
            not_converted_click = tf.cast(click, tf.float32) * (1.0 - conversion)  # Eq. 5
            terms["ctuncvr_loss"] = tf.reduce_mean(
                losses.binary_crossentropy(not_converted_click, predictions["ctuncvr"])
            )  # Eq. 7
            terms["uncvr_loss"] = self._click_space(
                click, propensity, losses.binary_crossentropy(1.0 - conversion, uncvr)
            )  # Eq. 8-9
            total += terms["ctuncvr_loss"] + terms["uncvr_loss"]
        if self.options.use_sam:
            cvr_to_uncvr = losses.binary_crossentropy(1.0 - tf.stop_gradient(uncvr), cvr)
            uncvr_to_cvr = losses.binary_crossentropy(1.0 - tf.stop_gradient(cvr), uncvr)
            # 1/ô on clicked and 1/(1 − ô) on unclicked rows for both terms.
            terms["align_loss"] = sum(self.ipw_loss.dual(click, propensity, e) for e in (cvr_to_uncvr, uncvr_to_cvr))
            total += terms["align_loss"]  # Eq. 10
        terms["loss"] = total  # Eq. 11
        return terms

    def _click_space(self, click, propensity, error):
        if self.options.click_space_ipw:
            return self.ipw_loss(click, propensity, error)
        return losses.masked_mean(error, click)
