"""Variational information between a teacher layer and a student layer (Ahn et al., CVPR 2019, https://arxiv.org/abs/1904.05835)."""

import keras
import tensorflow as tf

REDUCTIONS = ("sum", "mean")


@keras.saving.register_keras_serializable(package="tfcvr")
class VariationalInformation(keras.layers.Layer):
    """−log q(t | s) up to a constant, per example: the VIE loss of Fei et al., AAAI 2025,
    https://arxiv.org/abs/2502.15687, Eq. 10-11.

    q is a Gaussian with mean μ(s) = W s + b (a linear layer of the student
    activations) and per-entry variance σ² = softplus(ρ) + `min_variance`,
    ρ trainable (Eq. 11):

        loss = Σ_n  log σ_n + (t_n − μ_n(s))² / (2 σ_n²)

    Minimising it maximises the variational lower bound of I(t; s) (Eq. 10).

    Args:
      learn_variance: train ρ (Eq. 11). False keeps σ² at its initial value:
        the EVI official code computes σ² once at construction, so its
        variance never moves (docs/methods.md, section "evi").
      initial_rho: ρ at initialisation (official code: 5, σ² ≈ 5.0077).
      min_variance: added to softplus(ρ), as the official code does (1e-3).
      reduction: "sum" over the entries n (Eq. 11 as printed) or "mean" (the
        official code's mean, 1/N of the sum, independent of the layer width).

    Call on `[teacher, student]` activations, [batch, d_t] and [batch, d_s];
    returns [batch].

    Example:
    >>> layer = VariationalInformation()
    >>> layer([keras.ops.ones((2, 3)), keras.ops.ones((2, 4))]).shape
    (2,)
    """

    def __init__(self, learn_variance=True, initial_rho=5.0, min_variance=1e-3, reduction="sum", **kwargs):
        super().__init__(**kwargs)
        if reduction not in REDUCTIONS:
            raise ValueError(f"`reduction` must be one of {REDUCTIONS}. Received: {reduction!r}")
        if min_variance <= 0:
            raise ValueError(f"`min_variance` must be positive. Received: {min_variance}")
        self.learn_variance = learn_variance
        self.initial_rho = initial_rho
        self.min_variance = min_variance
        self.reduction = reduction
        self.mean = None

    def build(self, input_shape: list[tuple]) -> None:
        teacher_shape, student_shape = input_shape
        width = teacher_shape[-1]
        self.mean = keras.layers.Dense(width, name="mean")  # μ = f(s; θ_s)
        self.mean.build(student_shape)
        self.rho = self.add_weight(
            shape=(width,),
            initializer=keras.initializers.Constant(self.initial_rho),
            trainable=self.learn_variance,
            name="rho",
        )

    def variance(self) -> tf.Tensor:
        """σ² per entry, [d_t]."""
        return keras.ops.softplus(self.rho) + self.min_variance

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        teacher, student = inputs
        variance = self.variance()
        per_entry = 0.5 * keras.ops.log(variance) + keras.ops.square(teacher - self.mean(student)) / (2.0 * variance)
        if self.reduction == "sum":
            return keras.ops.sum(per_entry, axis=-1)
        return keras.ops.mean(per_entry, axis=-1)

    def compute_output_shape(self, input_shape: list[tuple]) -> tuple:
        return tuple(input_shape[0][:-1])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "learn_variance": self.learn_variance,
            "initial_rho": self.initial_rho,
            "min_variance": self.min_variance,
            "reduction": self.reduction,
        }
