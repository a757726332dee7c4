"""Every registered model x backbone: train a few steps, evaluate, export, reload, compare."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcvr import export, metrics, models
from tfcvr.data import TFRecordPipeline
from trainer.loop import TrainingLoop


@pytest.mark.parametrize(
    "name, backbone", [(name, backbone) for name in models.names() for backbone in models.get(name).backbones]
)
def test_trains_evaluates_exports_and_reloads(name, backbone, simulated, tmp_path):
    schema = simulated["schema_obj"]
    keras.utils.set_random_seed(0)
    model = models.build(name, schema, backbone=backbone, embedding_dim=4, hidden_units=(16,), tower_units=(8, 4))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.build_optimizers()
    before = [v.numpy().copy() for v in model.trainable_variables]
    train = TFRecordPipeline(simulated["train"], schema, 256, shuffle=True, seed=0)
    loop = TrainingLoop(model, tf.distribute.get_strategy(), str(tmp_path / "ckpt"), log_every=5)
    result = loop.train(lambda context: train.dataset(), epochs=1, global_batch_size=256)
    epochs = sum(stage_epochs for _, stage_epochs in model.training_stages(1))
    assert result["steps"] == 10 * epochs and np.isfinite(result["loss"])
    assert any(not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables))

    evaluation = TFRecordPipeline(simulated["eval"], schema, 256, ground_truth=True)
    results = metrics.evaluate(model, evaluation.dataset())
    assert results["impressions"] == 600 and 0.0 <= results["ctr_auc"] <= 1.0
    assert np.isfinite(results["oracle_cvr_auc"])

    path = export.export_for_serving(model, schema, str(tmp_path / "export"))
    serving = tf.saved_model.load(path).signatures["serving_default"]
    records = tf.stack(list(tf.data.TFRecordDataset(tf.io.gfile.glob(simulated["eval"])).take(32)))
    served = serving(examples=records)
    (features, _), = list(TFRecordPipeline(simulated["eval"], schema, 32).dataset().take(1))
    expected = model(features, training=False)
    for key in ("ctr", "cvr", "ctcvr"):
        assert served[key].shape == (32,) and served[key].dtype == tf.float32
        np.testing.assert_allclose(served[key].numpy(), expected[key].numpy(), rtol=1e-5, atol=1e-6)
