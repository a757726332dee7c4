"""NISE: semi-supervised CVR learning on non-click samples with a dynamic loss weight."""

import dataclasses

import tensorflow as tf

from tfcvr import losses
from tfcvr.models import registry
from tfcvr.models.base import CVRModel, MethodOptions

REDUCTIONS = ("population", "batch")


@dataclasses.dataclass(frozen=True, kw_only=True)
class NISEOptions(MethodOptions):
    """`NISE`'s arguments (its class docstring)."""

    dynamic_weight_scale: float = 1.0  # α
    max_weight_ratio: float = 50.0  # β
    dynamic_weight: bool = True
    use_unclicked: bool = True
    use_ctr_loss: bool = True
    entropy_loss_weight: float = 0.05  # ω
    reduction: str = "population"
    loss_ratio_momentum: float = 0.99

    def __post_init__(self) -> None:
        if self.max_weight_ratio <= 0:
            raise ValueError(f"`max_weight_ratio` β must be positive. Received: {self.max_weight_ratio}")
        if self.entropy_loss_weight < 0:
            raise ValueError(f"`entropy_loss_weight` ω must be non-negative. Received: {self.entropy_loss_weight}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"`reduction` must be one of {REDUCTIONS}. Received: {self.reduction!r}")
        if not 0.0 <= self.loss_ratio_momentum < 1.0:
            raise ValueError(f"`loss_ratio_momentum` must be in [0, 1). Received: {self.loss_ratio_momentum}")


@registry.register("nise")
class NISE(CVRModel):
    """NISE (Huang et al., "Utilizing Non-click Samples via Semi-supervised
    Learning for Conversion Rate Prediction", RecSys 2024,
    https://doi.org/10.1145/3640457.3688151), as its official code implements
    it (strategy `adaptive_ucvrlc`), with the strength of the entropy term
    made explicit.

        L_CVR = mean_O δ(r, r̂) + ω · mean_N δ(r̂, r̂)      (reduction "population", default)
        L_CVR = (1/|D|) Σ_D [ o·δ(r, r̂) + ω·(1 − o)·δ(r̂, r̂) ]   (reduction "batch", the code; ω = 1)
        λ     = α · min(sg(L̄_CTR) / sg(L̄_CVR), β)    (L̄: running means; the paper: this batch's L)
        L     = L_CTR + λ·L_CVR

    δ(r̂, r̂) takes the model's own prediction as the target of an unclicked
    impression without stopping its gradient, so it is the entropy H(r̂):
    entropy minimisation, the semi-supervised term that pushes unclicked
    predictions away from uncertainty (detaching it would make the term's
    gradient vanish). λ is computed from loss values, not differentiated,
    and rescales the CVR task to the CTR task's size. The
    code computes a CTCVR loss but leaves it out of L; so does this.

    Why the default differs from the code. Entropy minimisation pulls every
    unclicked prediction towards 0 (for r̂ < 0.5, dH/dlogit =
    r̂(1 − r̂)·log((1 − r̂)/r̂) > 0), and the clicked rows' log loss is the only
    force holding the level. The code's 1/|D| weights the two by the shares
    of clicks and non-clicks, so the entropy term is (1 − CTR)/CTR times
    stronger than the labelled term (12x at a CTR of 8%), and the code's
    recipe collapses the CVR tower to about 0 (docs/methods.md). Means per
    population with ω = 0.05 make the balance independent of the CTR; a constant predictor
    then settles where (r̂ − CVR) = ω·r̂(1 − r̂)·log((1 − r̂)/r̂), a few percent
    below the observed CVR.

    Why λ divides running means. With the batch's own L_CVR in the
    denominator, the CVR term's gradient is α·sg(L_CTR)·∇L_CVR / L_CVR =
    α·sg(L_CTR)·∇log L_CVR: the method then minimises the log of each batch's
    CVR loss. Where conversions are rare most batches hold none, and on such
    a batch log L_CVR falls without bound as pCVR → 0, so pCVR collapses
    (also without the entropy term, and not with λ = 1). Exponential running
    means of both losses (`loss_ratio_momentum`, kept in the model's
    `loss_averages`) keep the scale the paper's λ gives without that coupling;
    `loss_ratio_momentum=0` is the paper's per-batch ratio.

    Args:
      dynamic_weight_scale: α, the scale of the dynamic CVR loss weight λ. Default 1.
      max_weight_ratio: β, the cap on L_CTR/L_CVR. Default 50.
      dynamic_weight: False is the code's `ablation_2` (λ = 1).
      use_unclicked: False is `ablation_3` (no entropy term).
      use_ctr_loss: False is `ablation_1` (L = L_CVR; pCTR is then untrained).
      entropy_loss_weight: ω, the weight of the entropy term. Default 0.05;
        `entropy_loss_weight=1, reduction="batch", loss_ratio_momentum=0`
        is the official code.
      reduction: "population" (default: each term a mean over its own rows)
        or "batch" (the code: both summed and divided by the batch size).
      loss_ratio_momentum: momentum of the running means of L_CTR and L_CVR
        that λ divides, in [0, 1). Default 0.99; 0 is the paper's and the
        code's ratio of the batch's own losses.
      **kwargs: `CVRModel` arguments.
    """

    options_class = NISEOptions
    options: NISEOptions

    def __init__(self, schema, **kwargs):
        super().__init__(schema, **kwargs)
        # Running means of (L_CTR, L_CVR) that λ is the ratio of (momentum > 0); "mean" across replicas. Not
        # assigned to an attribute: TensorFlow's checkpoint would then save it under the model's attribute rather
        # than under its path with every other weight (`weights_by_path`, which warm starts read).
        self.add_weight(name="loss_averages", shape=(2,), initializer="zeros", trainable=False, aggregation="mean")

    @property
    def loss_averages(self):
        """The running means of (L_CTR, L_CVR): a non-trainable model weight."""
        return self.weights_by_path()[f"{self.name}/loss_averages"]

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        click = tf.cast(labels["click"], tf.float32)
        cvr = predictions["cvr"]
        click_loss = losses.binary_crossentropy(labels["conversion"], cvr)
        entropy = losses.binary_crossentropy(cvr, cvr)  # H(r̂), not detached
        if self.options.reduction == "population":
            cvr_loss = losses.masked_mean(click_loss, click)
            if self.options.use_unclicked:
                cvr_loss += self.options.entropy_loss_weight * losses.masked_mean(entropy, 1.0 - click)
        else:
            per_row = click * click_loss
            if self.options.use_unclicked:
                per_row += self.options.entropy_loss_weight * (1.0 - click) * entropy
            cvr_loss = tf.reduce_mean(per_row)
        ctr_loss = self.ctr_log_loss(labels, predictions)
        weight = tf.constant(1.0)
        if self.options.dynamic_weight:
            ctr_level, cvr_level = tf.unstack(self._loss_levels(ctr_loss, cvr_loss))
            ratio = tf.math.divide_no_nan(ctr_level, cvr_level)
            weight = self.options.dynamic_weight_scale * tf.minimum(ratio, self.options.max_weight_ratio)
        total = weight * cvr_loss + (ctr_loss if self.options.use_ctr_loss else 0.0)
        return {"loss": total, "cvr_loss": cvr_loss, "ctr_loss": ctr_loss, "cvr_loss_weight": weight}

    def _loss_levels(self, ctr_loss: tf.Tensor, cvr_loss: tf.Tensor) -> tf.Tensor:
        """(L_CTR, L_CVR) that λ divides: this batch's (momentum 0, the paper) or their running means."""
        batch = tf.stop_gradient(tf.stack([ctr_loss, cvr_loss]))
        if self.options.loss_ratio_momentum == 0:
            return batch
        momentum = self.options.loss_ratio_momentum
        # Both means start at 0 and share the factor 1 − momentum^t, so their ratio needs no bias correction.
        self.loss_averages.assign(momentum * self.loss_averages + (1.0 - momentum) * batch)
        return tf.convert_to_tensor(self.loss_averages)
