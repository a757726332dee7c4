import math

import numpy as np

from tfcvr import losses


def test_matches_hand_computation_with_soft_labels():
    values = losses.binary_crossentropy([1, 0, 0.25], [0.8, 0.1, 0.5]).numpy()
    expected = [-math.log(0.8), -math.log(0.9), -(0.25 * math.log(0.5) + 0.75 * math.log(0.5))]
    np.testing.assert_allclose(values, expected, rtol=1e-5)


def test_saturated_probabilities_stay_finite():
    values = losses.binary_crossentropy([1, 0], [0.0, 1.0]).numpy()
    assert np.all(np.isfinite(values)) and np.all(values > 10)
