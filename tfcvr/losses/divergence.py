"""KL divergence between the Bernoulli distributions that CVR heads predict."""

import tensorflow as tf

# As in `binary_crossentropy`: keeps log(0) out of saturated sigmoid outputs.
_EPSILON = 1e-7


def bernoulli_kl(p: tf.Tensor, q: tf.Tensor) -> tf.Tensor:
    """KL((p, 1 − p) || (q, 1 − q)) element-wise: p log(p/q) + (1 − p) log((1 − p)/(1 − q)).

    The two-class form of Xu et al. (WWW 2022,
    https://doi.org/10.1145/3485447.3512081) Eq. 11, where each CVR predictor outputs the
    softmax distribution (pCVR, 1 − pCVR). Both inputs are clipped to
    [1e-7, 1 − 1e-7]; the result is ≥ 0 and 0 where p = q.
    """
    p = tf.clip_by_value(tf.cast(p, tf.float32), _EPSILON, 1.0 - _EPSILON)
    q = tf.clip_by_value(tf.cast(q, tf.float32), _EPSILON, 1.0 - _EPSILON)
    return p * (tf.math.log(p) - tf.math.log(q)) + (1.0 - p) * (tf.math.log1p(-p) - tf.math.log1p(-q))
