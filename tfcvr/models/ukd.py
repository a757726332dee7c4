"""UKD: a click-adaptive teacher labels unclicked impressions; an uncertainty-regularised student learns from them."""

import dataclasses
import math

import keras
import tensorflow as tf

from tfcvr import losses
from tfcvr.layers import MLP, Dropout, GradientReversal
from tfcvr.models import registry
from tfcvr.models.base import CTRLossOptions, CVRModel, ModelSpec, Preset, Step, head

UNCERTAINTY = ("two_predictors", "none", "mc_dropout")
# "mc_dropout" runs its passes as this many independent batches (`UKD.pseudo_labels`): one per core on the two-core
# machines measured (one thread per op); on more cores or threads per op two smaller products cost about one larger.
MC_PARALLEL_BATCHES = 2


@dataclasses.dataclass(frozen=True, kw_only=True)
class UKDOptions(CTRLossOptions):
    """`UKD`'s arguments (its class docstring); defaults from the paper's A.1 where it gives them."""

    uncertainty: str = "two_predictors"
    teacher_epochs: int = 1
    distillation_loss_weight: float = 0.5  # α
    ctr_loss_weight: float = 0.2  # γ
    uncertainty_scale: float = 100.0  # λ of Eq. 12
    student_dropout: float = 0.2
    detach_uncertainty_weight: bool = True
    reversal_scale: float = 1.0
    discriminator_unclicked_ratio: float | None = 1.0
    teacher_dropout: float | None = None
    mc_samples: int = 10
    mc_keep_fraction: float = 0.8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.uncertainty not in UNCERTAINTY:
            raise ValueError(f"`uncertainty` must be one of {UNCERTAINTY}. Received: {self.uncertainty!r}")
        if int(self.teacher_epochs) < 1:
            raise ValueError(f"`teacher_epochs` must be at least 1. Received: {self.teacher_epochs}")
        if not 0.0 <= self.student_dropout < 1.0:
            raise ValueError(f"`student_dropout` must be in [0, 1). Received: {self.student_dropout}")
        if self.teacher_dropout is not None and not 0.0 <= self.teacher_dropout < 1.0:
            raise ValueError(f"`teacher_dropout` must be in [0, 1) or None. Received: {self.teacher_dropout}")
        if self.reversal_scale < 0:
            raise ValueError(f"`reversal_scale` must be non-negative. Received: {self.reversal_scale}")
        if self.discriminator_unclicked_ratio is not None and self.discriminator_unclicked_ratio < 0:
            raise ValueError(
                "`discriminator_unclicked_ratio` must be non-negative or None. "
                f"Received: {self.discriminator_unclicked_ratio}"
            )
        if int(self.mc_samples) < 2:
            raise ValueError(f"`mc_samples` must be at least 2 (a variance needs two). Received: {self.mc_samples}")
        if not 0.0 < self.mc_keep_fraction <= 1.0:
            raise ValueError(f"`mc_keep_fraction` must be in (0, 1]. Received: {self.mc_keep_fraction}")
        # Counts given as whole floats (2.0) are kept as ints; the dataclass is frozen.
        object.__setattr__(self, "teacher_epochs", int(self.teacher_epochs))
        object.__setattr__(self, "mc_samples", int(self.mc_samples))


@registry.register("ukd")
class UKD(CVRModel):
    """Uncertainty-regularized knowledge distillation (Xu et al., WWW 2022,
    https://doi.org/10.1145/3485447.3512081), §3 and Appendix A.1 of the paper.

    Two stages, both run by one `python -m trainer.task --model=ukd` (the
    training loop runs `training_stages` in order):

    1. Teacher, `teacher_epochs` epochs. A separate network `teacher` with
       its own embeddings: representation h = T_f(x), CVR predictor
       p_T = T_p(h) and click discriminator p_d = T_d(GRL(h)) (Eq. 5). One
       optimizer minimises L_T = L_CVR^(T) + L_d with
       L_CVR^(T) = mean over clicked rows of δ(r, p_T) (Eq. 6) and
       L_d = mean of δ(o, p_d) over the clicked rows and an equal-sized random
       sample of the unclicked rows of the batch (Eq. 7, A.1); the gradient
       reversal layer makes T_f maximise L_d while T_d minimises it.
    2. Student, `epochs` epochs (the --epochs flag). The teacher is frozen:
       its pseudo-label p_T(x) for each row is computed in inference mode
       inside the student's step (§3.1.2) and no teacher variable is updated.
       The student is the model itself: CTR and CVR towers on the backbone
       (Eq. 8); the CVR tower's hidden layers give h_conv and two CVR
       predictors (one-layer heads, as the last layer of A.1's dense block)
       read it after independent dropout: p, p' (Eq. 11). Its loss, with the paper's sums divided by the batch
       size (so the relative weights are the paper's):

         L_CVR = Σ_O [δ(r, p) + δ(r, p')]
               + α Σ_N [e^{−λ KL(p‖p')} δ(p_T, p) + e^{−λ KL(p'‖p)} δ(p_T, p')]
               + Σ_N KL(p‖p')                                  (Eq. 9, 11, 12, A.1)
         L_student = L_CVR + γ L_CTR,  L_CTR = Σ_D δ(o, pCTR)   (Eq. 10)

       with O the clicked and N the unclicked rows. Serving reads
       pCVR = (p + p')/2 (A.1).

    The softmax over (pCVR, 1 − pCVR) of Eq. 5 and 8 is a sigmoid head here:
    the same distribution with one logit.

    Args:
      uncertainty: "two_predictors" (UKD, above); "none" (UKD-base, §3.2.1:
        one CVR predictor, L_CVR = Σ_O δ(r, p) + α Σ_N δ(p_T, p), Eq. 9-10);
        "mc_dropout" (Table 6: the teacher, trained with dropout, predicts
        `mc_samples` times with dropout on; the mean is the pseudo-label and
        only the `mc_keep_fraction` of unclicked rows with the lowest variance
        train a base student; the paper ranks the whole unclicked set, here the
        ranking is per batch so no second pass over the data is needed).
      teacher_epochs: epochs of the teacher stage, before the student's.
      distillation_loss_weight: α, weight of the unclicked rows' distillation
        loss (A.1: 0.5).
      ctr_loss_weight: γ, weight of the CTR loss (A.1: 0.2).
      uncertainty_scale: λ of Eq. 12 (A.1: 100).
      student_dropout: rate of the two independent dropouts before the CVR
        predictors (A.1: 0.2).
      detach_uncertainty_weight: stop gradients through e^{−λ KL}. Default
        True, a departure from the paper's literal objective, which lets the
        weight be differentiable and adds the KL regulariser because "a large
        KL-divergence leads to small label distillation loss". That objective
        rewards splitting the predictors: per unclicked row,
        α e^{−λ KL} ℓ + KL is smallest at KL = ln(αλℓ)/λ when αλℓ > 1, and
        two randomly initialised heads start far apart (λ = 100). With heads
        at 1/2 and a constant learning rate the literal objective (False) split
        the predictors into near-constants; detached, they agree and the
        student tracks its teacher (docs/methods.md has both measurements and
        notes that from the base rates under the cosine schedule the literal
        objective no longer collapsed in the test suite's guard).
      reversal_scale: gradient reversal strength (Ganin's λ; the paper uses
        the plain reversal, 1).
      discriminator_unclicked_ratio: unclicked rows sampled per clicked row
        for L_d (A.1: 1, i.e. 1:1; §4.5.1 varies it; None = every unclicked row).
      teacher_dropout: dropout in the teacher's network. Default None: the
        model's `dropout`, or 0.2 with "mc_dropout" (the rate of Table 6).
      mc_samples, mc_keep_fraction: the Monte-Carlo-dropout variant's 10
        passes and 80% kept (§4.4).
      **kwargs: `CVRModel` arguments.
    """

    task_names = ("ctr", "cvr")

    options_class = UKDOptions
    options: UKDOptions

    def __init__(self, schema, **kwargs):
        super().__init__(schema, **kwargs)
        self.teacher = self._build_teacher(self.architecture)

    def build_outputs(
        self, inputs: dict[str, keras.KerasTensor], task_representations: dict[str, keras.KerasTensor], spec: ModelSpec
    ) -> dict[str, keras.KerasTensor]:
        outputs = {"ctr": self.task_tower("ctr", task_representations["ctr"], spec)}
        if self.options.uncertainty == "two_predictors":
            # h_conv = S^v_f(x): the CVR tower's hidden layers (A.1: the dense block but its last layer).
            conversion_representation = MLP(spec.tower_units, dropout=spec.dropout, name="cvr_tower")(
                task_representations["cvr"]
            )
            # Eq. 11: S_p(dropout(h_conv)) and S_p'(dropout'(h_conv)), independent dropout masks.
            for predictor in ("cvr_first", "cvr_second"):
                dropped = Dropout(self.options.student_dropout, name=f"{predictor}_dropout")(conversion_representation)
                outputs[predictor] = head(predictor, dropped, spec.log_odds("cvr"))
            outputs["cvr"] = keras.ops.multiply(0.5, outputs["cvr_first"] + outputs["cvr_second"])  # A.1
        else:
            outputs["cvr"] = self.task_tower("cvr", task_representations["cvr"], spec)
        outputs["ctcvr"] = keras.ops.multiply(outputs["ctr"], outputs["cvr"])
        return outputs

    def _build_teacher(self, spec):
        """The click-adaptive teacher T_f, T_p, T_d (Eq. 5) as its own functional model."""
        dropout = self.options.teacher_dropout
        if dropout is None:
            dropout = 0.2 if self.options.uncertainty == "mc_dropout" else spec.dropout
        teacher_spec = dataclasses.replace(spec, dropout=dropout)
        inputs = self.feature_inputs(spec.schema)
        embedded = self.feature_embedding(teacher_spec, name="teacher_embedding")(inputs)
        interacted = teacher_spec.interact(embedded, name_prefix="teacher_")
        backbone = teacher_spec.backbone_layer(1, layer_name="teacher_backbone")
        representation = backbone(interacted)[0]
        reversed_representation = GradientReversal(self.options.reversal_scale, name="gradient_reversal")(
            representation
        )
        outputs = {
            "teacher_representation": representation,  # h^(T)
            "teacher_cvr": self.task_tower(
                "teacher_cvr", representation, teacher_spec, initial_logit=spec.log_odds("cvr")
            ),  # p_T
            "click_discriminator": self.task_tower(
                "click_discriminator",
                reversed_representation,
                teacher_spec,
                initial_logit=self._discriminator_log_odds(spec),
            ),
        }
        teacher = keras.Model(inputs=inputs, outputs=outputs, name="teacher")
        if self.options.uncertainty == "mc_dropout":
            # The Monte-Carlo passes differ only from the backbone's first dropout on (the embedding and interaction
            # have none): views of the teacher's own layers from its features to the backbone's input and from its
            # representation to p_T, around the backbone itself, which runs the passes from its first dropout
            # (`passes`), so neither the lookups nor the backbone's first product are repeated.
            self._mc_views = _Untracked(
                keras.Model(inputs, interacted, name="teacher_backbone_input"),
                backbone,
                keras.Model(representation, outputs["teacher_cvr"], name="teacher_cvr_from_representation"),
            )
        return teacher

    def _discriminator_log_odds(self, spec):
        """L_d's base rate: clicks are 1 in 1 + k of its sample (k unclicked rows per click), or the CTR (k None)."""
        ratio = self.options.discriminator_unclicked_ratio
        if ratio is None:
            return spec.log_odds("ctr")
        return -math.log(ratio) if ratio > 0 else 0.0  # k = 0: clicks only, one class; start at 1/2

    # -- stages ---------------------------------------------------------------

    def training_stages(self, epochs: int) -> tuple:
        return (("teacher", self.options.teacher_epochs), ("student", epochs))

    def stage_steps(self) -> dict[str, Step]:
        return {"teacher": self.teacher_step, "student": self.student_step}

    @property
    def student_variables(self) -> list[keras.Variable]:
        teacher = {id(v) for v in self.teacher.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in teacher]

    def build_optimizers(self) -> None:
        self.teacher_optimizer = self.optimizer_copy()
        self.optimizer.build(self.student_variables)
        self.teacher_optimizer.build(self.teacher.trainable_variables)

    def teacher_step(self, data: tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]) -> dict[str, tf.Tensor]:
        """Stage 1: one adversarial update of the teacher (Eq. 6-7); the student is untouched."""
        features, labels = data
        with tf.GradientTape() as tape:
            terms = self.teacher_objective(labels, self.teacher(features, training=True))
        self.minimize(tape, terms["loss"], self.teacher.trainable_variables, self.teacher_optimizer)
        return terms

    def teacher_objective(
        self,
        labels: dict[str, tf.Tensor],
        teacher_outputs: dict[str, tf.Tensor],
        domain_sample: tf.Tensor | None = None,
    ) -> dict:
        """L_CVR^(T) (Eq. 6) + L_d (Eq. 7); `domain_sample` (0/1 rows for L_d) defaults to the 1:1 sample."""
        click = labels["click"]
        if domain_sample is None:
            domain_sample = (
                tf.ones_like(click, tf.float32)
                if self.options.discriminator_unclicked_ratio is None
                else losses.undersample_unclicked(click, 1.0 + self.options.discriminator_unclicked_ratio)
            )
        cvr_loss = losses.masked_mean(
            losses.binary_crossentropy(labels["conversion"], teacher_outputs["teacher_cvr"]), click
        )
        discriminator_loss = losses.sample_mean(
            losses.binary_crossentropy(click, teacher_outputs["click_discriminator"]), domain_sample
        )
        return {
            "teacher_cvr_loss": cvr_loss,
            "discriminator_loss": discriminator_loss,
            "loss": cvr_loss + discriminator_loss,
        }

    def student_step(self, data: tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]) -> dict[str, tf.Tensor]:
        """Stage 2: pseudo-labels from the frozen teacher, then one update of the student's variables."""
        features, labels = data
        pseudo_labels = self.pseudo_labels(features)
        with tf.GradientTape() as tape:
            terms = self.objective(labels, {**self(features, training=True), **pseudo_labels})
        self.minimize(tape, terms["loss"], self.student_variables)
        return terms

    def pseudo_labels(self, features: dict[str, tf.Tensor]) -> dict:
        """{"pseudo_label": p_T} from the frozen teacher, no gradient (§3.1.2).

        With "mc_dropout" also "pseudo_label_variance" over the dropout passes.
        """
        if self.options.uncertainty != "mc_dropout":
            return {"pseudo_label": tf.stop_gradient(self.teacher(features, training=False)["teacher_cvr"])}
        # Table 6: dropout on at inference, mean and variance over the passes. The passes run as forward passes over
        # the batch's rows repeated from the backbone's first dropout on: dropout draws its mask per row, so each
        # copy is an independent pass, and one large matmul per layer costs less than mc_samples small ones. They
        # are split into MC_PARALLEL_BATCHES independent batches, which TensorFlow's executor runs side by side on
        # two cores when each op runs on one thread (`--intra_op_threads`' auto on two cores).
        backbone_input, backbone, cvr_from_representation = self._mc_views.models
        backbone_inputs = backbone_input(features, training=True)
        samples = []
        for passes in _split(self.options.mc_samples, MC_PARALLEL_BATCHES):
            representation = backbone(backbone_inputs, training=True, passes=passes)[0]
            samples.append(tf.reshape(cvr_from_representation(representation, training=True), [passes, -1]))
        samples = tf.stop_gradient(tf.concat(samples, axis=0))  # [pass, row]
        return {
            "pseudo_label": tf.reduce_mean(samples, axis=0),
            "pseudo_label_variance": tf.math.reduce_variance(samples, axis=0),
        }

    def objective(self, labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> dict:
        """The student's loss terms (class docstring, stage 2) for one batch.

        `predictions` holds the model's outputs and the teacher's
        `pseudo_labels` (with "mc_dropout", only the unclicked rows of lowest
        pseudo-label variance count: `keep_lowest`).
        """
        pseudo_label = predictions["pseudo_label"]
        click = tf.cast(labels["click"], tf.float32)
        unclick = 1.0 - click
        conversion = tf.cast(labels["conversion"], tf.float32)
        terms = {"ctr_loss": self.ctr_log_loss(labels, predictions)}
        if self.options.uncertainty == "two_predictors":
            first, second = predictions["cvr_first"], predictions["cvr_second"]
            kl_first, kl_second = losses.bernoulli_kl(first, second), losses.bernoulli_kl(second, first)  # Eq. 11
            weight_first = tf.exp(-self.options.uncertainty_scale * kl_first)  # Eq. 12
            weight_second = tf.exp(-self.options.uncertainty_scale * kl_second)  # its symmetric term (A.1)
            if self.options.detach_uncertainty_weight:
                weight_first, weight_second = tf.stop_gradient(weight_first), tf.stop_gradient(weight_second)
            terms["cvr_click_loss"] = tf.reduce_mean(
                click * (losses.binary_crossentropy(conversion, first) + losses.binary_crossentropy(conversion, second))
            )
            terms["cvr_unclick_loss"] = self.options.distillation_loss_weight * tf.reduce_mean(
                unclick
                * (
                    weight_first * losses.binary_crossentropy(pseudo_label, first)
                    + weight_second * losses.binary_crossentropy(pseudo_label, second)
                )
            )
            terms["uncertainty_loss"] = tf.reduce_mean(unclick * kl_first)  # the KL regulariser, §3.2.2
            terms["uncertainty_weight"] = losses.masked_mean(weight_first, unclick)  # monitoring only
        else:
            sample = unclick
            if "pseudo_label_variance" in predictions:
                sample = losses.keep_lowest(
                    predictions["pseudo_label_variance"], unclick, self.options.mc_keep_fraction
                )
            cvr = predictions["cvr"]
            terms["cvr_click_loss"] = tf.reduce_mean(click * losses.binary_crossentropy(conversion, cvr))  # Eq. 9
            terms["cvr_unclick_loss"] = self.options.distillation_loss_weight * tf.reduce_mean(
                sample * losses.binary_crossentropy(pseudo_label, cvr)
            )
        cvr_loss = terms["cvr_click_loss"] + terms["cvr_unclick_loss"] + terms.get("uncertainty_loss", 0.0)
        terms["loss"] = cvr_loss + self.options.ctr_loss_weight * terms["ctr_loss"]  # Eq. 10
        return terms


@registry.register("ukd_base")
class UKDBase(UKD):
    """UKD-base (Xu et al., WWW 2022, §3.2.1, Table 4): the click-adaptive teacher, a base student, no uncertainty."""

    preset = Preset(parent="ukd", fixed={"uncertainty": "none"})


@registry.register("ukd_mc_dropout")
class UKDMonteCarloDropout(UKD):
    """UKD with Monte-Carlo-dropout uncertainty (Xu et al., WWW 2022, §4.4, Table 6) instead of the two predictors."""

    preset = Preset(parent="ukd", fixed={"uncertainty": "mc_dropout"})


class _Untracked:
    """Holds Keras layers and models out of the owner's tracking: views of layers it owns (no second weight path)."""

    def __init__(self, *models: keras.Layer):
        self.models = models


def _split(total: int, parts: int) -> list[int]:
    """`total` as at most `parts` positive sizes, differing by at most one (larger first)."""
    return [size for size in (total // parts + (i < total % parts) for i in range(parts)) if size > 0]
