"""NISE: semi-supervised CVR learning on non-click samples with a dynamic loss weight."""

import tensorflow as tf

from tfcvr import losses
from tfcvr.models import registry
from tfcvr.models.base import CVRModel


@registry.register("nise")
class NISE(CVRModel):
    """NISE (Huang et al., RecSys 2024), as its official code implements it
    (strategy `adaptive_ucvrlc`, research/methods.md §2.6; no paper text here).

        L_CVR = (1/|D|) Σ_D [ o·δ(r, r̂) + (1 − o)·δ(r̂, r̂) ]
        λ     = α · min(sg(L_CTR) / sg(L_CVR), β)
        L     = L_CTR + λ·L_CVR

    δ(r̂, r̂) takes the model's own prediction as the target of an unclicked
    impression without stopping its gradient, so it is the entropy H(r̂):
    entropy minimisation, the semi-supervised term that pushes unclicked
    predictions away from uncertainty (detaching it would make the term's
    gradient vanish). λ is computed from the batch's loss values, not
    differentiated, and rescales the CVR task to the CTR task's size. The
    code computes a CTCVR loss but leaves it out of L; so does this.

    Args:
      alpha: α. Default 1.
      max_weight_ratio: β, the cap on L_CTR/L_CVR. Default 50.
      dynamic_weight: False is the code's `ablation_2` (λ = 1).
      use_unclicked: False is `ablation_3` (no entropy term).
      use_ctr_loss: False is `ablation_1` (L = L_CVR; pCTR is then untrained).
      **kwargs: `CVRModel` arguments.
    """

    def __init__(self, alpha=1.0, max_weight_ratio=50.0, dynamic_weight=True, use_unclicked=True,
                 use_ctr_loss=True, **kwargs):
        if max_weight_ratio <= 0:
            raise ValueError(f"`max_weight_ratio` β must be positive. Received: {max_weight_ratio}")
        super().__init__(**kwargs)
        self.alpha = alpha
        self.max_weight_ratio = max_weight_ratio
        self.dynamic_weight = dynamic_weight
        self.use_unclicked = use_unclicked
        self.use_ctr_loss = use_ctr_loss

    def objective(self, labels, predictions):
        click = tf.cast(labels["click"], tf.float32)
        cvr = predictions["cvr"]
        per_row = click * losses.binary_crossentropy(labels["conversion"], cvr)
        if self.use_unclicked:
            per_row += (1.0 - click) * losses.binary_crossentropy(cvr, cvr)  # entropy H(r̂), not detached
        cvr_loss = tf.reduce_mean(per_row)
        ctr_loss = self.ctr_log_loss(labels, predictions)
        weight = tf.constant(1.0)
        if self.dynamic_weight:
            ratio = tf.math.divide_no_nan(tf.stop_gradient(ctr_loss), tf.stop_gradient(cvr_loss))
            weight = self.alpha * tf.minimum(ratio, self.max_weight_ratio)
        total = weight * cvr_loss + (ctr_loss if self.use_ctr_loss else 0.0)
        return {"loss": total, "cvr_loss": cvr_loss, "ctr_loss": ctr_loss, "cvr_weight": weight}

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "max_weight_ratio": self.max_weight_ratio,
                "dynamic_weight": self.dynamic_weight, "use_unclicked": self.use_unclicked,
                "use_ctr_loss": self.use_ctr_loss}
