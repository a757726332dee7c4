"""Adam that updates only the embedding rows a batch looks up (the LazyAdam convention).

Adam (`tfcvr.optimizers.Adam`, as Keras') turns the sparse gradient of an
embedding lookup (a `tf.IndexedSlices`) into a dense tensor and updates every
row of every table on every step, although a batch of 2,048 touches a few
thousand of Ali-CCP-sized tables' ~740k rows. `LazyAdam` sums
duplicate indices, then updates the first and second moments and the
variable at the touched rows only; dense gradients get `Adam`'s fused update.

Semantics (TF Addons' LazyAdam): a row that is not looked up keeps its
moments and does not move, where dense Adam would decay its moments and keep
moving it by its momentum. While every row with non-zero moments is in the
batch (e.g. training on a fixed batch) the two are identical, which the tests
check step by step.
"""

import keras
import tensorflow as tf

from tfcvr.optimizers.adam import Adam


@keras.saving.register_keras_serializable(package="tfcvr")
class LazyAdam(Adam):
    """`tfcvr.optimizers.Adam` with row-wise updates for sparse gradients; same arguments (no amsgrad)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("LazyAdam does not implement amsgrad.")

    def update_step(
        self, gradient: tf.Tensor | tf.IndexedSlices, variable: keras.Variable, learning_rate: float | tf.Tensor
    ) -> None:
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        rows, positions = tf.unique(gradient.indices)
        # A lookup of the same id twice gives two slices; Adam sees their sum.
        values = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), positions, tf.shape(rows)[0])
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = (
            tf.cast(learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, local_step)) / (1 - tf.pow(beta_1, local_step))
        )
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        # Keras Adam's arithmetic, in its order, on the touched rows: m += (g - m)(1 - β1), v += (g² - v)(1 - β2),
        # θ -= m·α / (√v + ε).
        m_rows = tf.gather(m.value, rows)
        m_rows = m_rows + (values - m_rows) * (1 - self.beta_1)  # 1 - β in Python floats, as Keras does
        v_rows = tf.gather(v.value, rows)
        v_rows = v_rows + (tf.square(values) - v_rows) * (1 - self.beta_2)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(m_rows * alpha / (tf.sqrt(v_rows) + self.epsilon), rows))
