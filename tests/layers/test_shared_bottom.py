import keras
import numpy as np
import pytest

from tfcvr.layers import SharedBottom, make_backbone


def test_every_task_reads_the_shared_representation():
    layer = SharedBottom(num_tasks=3, units=(4,))
    outputs = layer(np.ones((2, 5), "float32"))
    assert len(outputs) == 3
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(outputs[0]), keras.ops.convert_to_numpy(outputs[2]))
    assert SharedBottom.from_config(layer.get_config()).get_config() == layer.get_config()


def test_invalid_arguments():
    with pytest.raises(ValueError, match="`num_tasks` must be positive"):
        SharedBottom(num_tasks=0)
    with pytest.raises(ValueError, match=r"Unknown backbone 'dcn'; expected one of \['mmoe', 'ple', 'shared_bottom'\]"):
        make_backbone("dcn", 2, (4,))
