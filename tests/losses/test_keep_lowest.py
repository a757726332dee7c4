import numpy as np
import pytest

from tfcvr.losses import keep_lowest


def test_keeps_the_lowest_fraction_within_the_mask():
    values = [5.0, 0.3, 0.1, 0.9, 0.2, 0.0]
    mask = [0, 1, 1, 1, 1, 0]
    # Masked rows 1-4, ⌈0.5·4⌉ = 2 kept: rows 2 (0.1) and 4 (0.2); rows outside the mask never.
    np.testing.assert_array_equal(keep_lowest(values, mask, 0.5).numpy(), [0, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(keep_lowest(values, mask, 0.7).numpy(), [0, 1, 1, 0, 1, 0])  # ⌈2.8⌉ = 3 kept
    np.testing.assert_array_equal(keep_lowest(values, mask, 0.8).numpy(), mask)  # ⌈3.2⌉ = 4 kept
    np.testing.assert_array_equal(keep_lowest(values, mask, 1.0).numpy(), mask)
    np.testing.assert_array_equal(keep_lowest(values, [0] * 6, 0.8).numpy(), [0] * 6)


def test_ties_break_by_row_order_and_fraction_is_checked():
    np.testing.assert_array_equal(keep_lowest([1.0, 1.0, 1.0], [1, 1, 1], 0.5).numpy(), [1, 1, 0])
    with pytest.raises(ValueError, match="kept fraction must be in"):
        keep_lowest([1.0], [1], 0.0)
