"""Adam (Kingma & Ba, ICLR 2015, https://arxiv.org/abs/1412.6980) in one fused kernel per variable.

Keras 3's Adam writes its update as separate tensor operations (a
subtraction, a product, an assignment, ... for the first moment, again for
the second, then for the variable), each a pass over the whole variable. For
a CVR ranker almost every parameter is an embedding row (Ali-CCP-sized
tables: ~4.4M of ~4.5M), so those passes over tables of several million
floats were a large share of a training step. TensorFlow's
`ResourceApplyAdam` kernel does the same arithmetic in one multi-threaded
pass over variable, m and v:

    α = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)
    m ← m + (g − m)(1 − β₁),  v ← v + (g² − v)(1 − β₂),  θ ← θ − m·α / (√v + ε)

(Keras' formula and order; results agree with Keras' Adam on dense gradients
to float32 rounding, tests/optimizers/test_adam.py).

Sparse gradients (the `tf.IndexedSlices` of an embedding lookup) are first
summed into the dense gradient, duplicate ids added, so every row gets the
update of the true gradient g = Σ gᵢ, as dense Adam in the papers' PyTorch
code does (their embedding gradients are dense). Keras' Adam instead squares
each slice before duplicates are added, so a row looked up k times in a batch
gets v from Σ gᵢ² rather than (Σ gᵢ)²: a different step for popular ids
(larger, up to √k, when the slices agree in sign; smaller when they cancel).
Rows not in the batch decay their moments and keep moving by their
momentum, as in any dense Adam (`LazyAdam` is the row-wise alternative).
Where this is not the PyTorch code's Adam: the official DDPO code adds
weight decay (1e-6), and PyTorch puts ε on the bias-corrected √v̂ where
Keras (and this kernel) put it on √v.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfcvr")
class Adam(keras.optimizers.Adam):
    """`keras.optimizers.Adam`'s arguments and variables, updated by TensorFlow's fused kernel.

    `amsgrad=True` takes Keras' own update (the kernel has no max of the
    second moments), as does a variable split across parameter servers
    (`has_handle`); weight decay, clipping and EMA are Keras' as well (they
    run outside `update_step`).
    """

    def update_step(
        self, gradient: tf.Tensor | tf.IndexedSlices, variable: keras.Variable, learning_rate: float | tf.Tensor
    ) -> None:
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        if self.amsgrad or not all(has_handle(x) for x in (variable, m, v)):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        local_step = tf.cast(self.iterations + 1, dtype)
        # Inside the strategy's update call a mirrored variable's handle is this replica's copy.
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(m),
            v=_handle(v),
            beta1_power=tf.pow(beta_1, local_step),
            beta2_power=tf.pow(beta_2, local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(tf.convert_to_tensor(gradient), dtype),  # the slices of duplicate ids summed
            use_locking=False,
        )


def _unwrapped(variable: keras.Variable | tf.Variable) -> tf.Variable:
    return variable.value if isinstance(variable, keras.Variable) else variable


def _handle(variable: keras.Variable | tf.Variable) -> tf.Tensor:
    return _unwrapped(variable).handle


def has_handle(variable: keras.Variable | tf.Variable) -> bool:
    """Whether the kernel can update `variable` in place: a resource variable (mirrored, aggregating or plain).

    A variable split across parameter servers (a `ShardedVariable`) has no
    single handle; Keras' update, made of assignments it supports, runs then.
    """
    return isinstance(getattr(type(_unwrapped(variable)), "handle", None), property)
