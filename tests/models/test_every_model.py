"""Every registered model on its own backbone: train a few steps with the command line's loop, evaluate, export,
serve through the gRPC and REST clients. (Every backbone and interaction: tests/models/test_every_architecture.py.)"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from serving import GrpcPredictionClient, RestPredictionClient
from serving.local import ExportedModels, start_grpc_server, start_rest_server
from tfcvr import export, metrics, models
from tfcvr.data import TFRecordPipeline, transform
from trainer.loop import TrainingLoop

# End-to-end: subprocesses, clusters or training to a bar; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", models.names())
def test_trains_evaluates_exports_and_reloads(name, simulated, tmp_path):
    schema = simulated["schema_obj"]
    keras.utils.set_random_seed(0)
    model = models.build(name, schema, embedding_dim=4, hidden_units=(16,), tower_units=(8, 4))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [v.numpy().copy() for v in model.trainable_variables]
    train = TFRecordPipeline(simulated["train"], schema, 256, shuffle=True, seed=0)
    loop = TrainingLoop(model, tf.distribute.get_strategy(), str(tmp_path / "ckpt"), log_every=5)
    result = loop.train(lambda context, epoch: train.dataset(epoch_index=epoch), epochs=1, global_batch_size=256)
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
    ((features, _),) = list(TFRecordPipeline(simulated["eval"], schema, 32).dataset().take(1))
    expected = model(features, training=False)
    for key in ("ctr", "cvr", "ctcvr"):
        assert served[key].shape == (32,) and served[key].dtype == tf.float32
        np.testing.assert_allclose(served[key].numpy(), expected[key].numpy(), rtol=1e-5, atol=1e-6)

    # The clients, through the in-process stand-ins for TF Serving's gRPC and REST APIs.
    served = ExportedModels({name: str(tmp_path / "export")}, file_system_poll_wait_seconds=0)  # one load, no poll
    grpc_server, grpc_port = start_grpc_server(served)
    rest_server, rest_port = start_rest_server(served)
    try:
        candidates = [record.numpy() for record in records]
        # Generous deadlines: the other test worker competes for the 2 cores.
        for client in (
            GrpcPredictionClient(f"localhost:{grpc_port}", name, timeout=30.0),
            RestPredictionClient(f"localhost:{rest_port}", name, signature_name="predict", schema=schema, timeout=30.0),
        ):
            scores = client.predict(candidates if isinstance(client, GrpcPredictionClient) else _dicts(records, schema))
            for key in ("ctr", "cvr", "ctcvr"):
                np.testing.assert_allclose(scores[key], expected[key].numpy(), rtol=1e-5, atol=1e-6)
    finally:
        grpc_server.stop(None).wait()
        rest_server.shutdown()
        served.close()


def _dicts(records, schema):
    """Candidate dicts of the features of serialized tf.Examples."""
    parsed = tf.io.parse_example(records, transform.feature_spec(schema))
    values = {f.name: parsed[f.name].numpy().tolist() for f in schema.features}
    return [{name: column[i] for name, column in values.items()} for i in range(len(records))]
