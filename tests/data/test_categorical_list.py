"""categorical_list features end to end: schema, parsing, pooling, training, serving."""

import copy

import keras
import numpy as np
import pytest
import tensorflow as tf

from serving import candidates as candidates_lib
from tests.conftest import TINY_SCHEMA, tiny_row, write_rows
from tfcvr import export, models
from tfcvr.data import TFRecordPipeline, example_writer, transform
from tfcvr.data import schema as schema_lib
from tfcvr.export import warmup
from tfcvr.layers import FeatureEmbedding

HISTORY = {"name": "history", "type": "categorical_list", "dtype": "int64", "num_buckets": 30, "max_length": 3}
TAGS = {"name": "tags", "type": "categorical_list", "dtype": "string", "num_buckets": 40, "max_length": 2}


def _schema_config():
    config = copy.deepcopy(TINY_SCHEMA)
    config["features"] += [copy.deepcopy(HISTORY), copy.deepcopy(TAGS)]
    return config


@pytest.fixture
def list_schema():
    return schema_lib.Schema.from_dict(_schema_config())


def _bucket(value, num_buckets):
    values = tf.constant([value], tf.string if isinstance(value, str) else tf.int64)
    return int(transform.hash_categorical(values, num_buckets).numpy()[0])


def test_schema_round_trip_and_validation(tmp_path, list_schema):
    path = str(tmp_path / "schema.json")
    schema_lib.save_schema(list_schema, path)
    loaded = schema_lib.load_schema(path)
    assert loaded == list_schema
    assert [f.name for f in loaded.lists] == ["history", "tags"]
    assert loaded.to_dict()["features"][3] == HISTORY
    assert [f.padding for f in loaded.lists] == [-1, ""]
    for mutate, expected in [
        (lambda f: f.pop("max_length"), r"'history'\): 'max_length' .* must be a positive integer"),
        (lambda f: f.update(max_length=0), r"'max_length' .* must be a positive integer"),
        (lambda f: f.update(dtype="float32"), r"'dtype' of a categorical feature"),
    ]:
        config = _schema_config()
        mutate(config["features"][3])
        with pytest.raises(ValueError, match=expected):
            schema_lib.Schema.from_dict(config)
    config = copy.deepcopy(TINY_SCHEMA)
    config["features"][0]["max_length"] = 3  # only lists have a max_length
    with pytest.raises(ValueError, match=r"'user_id'\): unknown key\(s\) \['max_length'\]"):
        schema_lib.Schema.from_dict(config)


def test_pipeline_pads_truncates_and_ignores_padding(tmp_path, list_schema):
    rows = [
        tiny_row(history=[5, 6, 7, 8], tags=["a"]),  # truncated to the first 3
        tiny_row(history=[], tags=[]),  # absent: all padding
        tiny_row(history=[-1, 9], tags=["", "b", "c"]),  # -1 and "" mean no value
    ]
    path = write_rows(tmp_path / "lists.tfrecord", rows)
    pipeline = TFRecordPipeline(path, list_schema, batch_size=8)
    with pipeline.named_errors():
        ((features, _),) = list(pipeline.dataset())
    h = lambda v: _bucket(v, 30)  # noqa: E731
    t = lambda v: _bucket(v, 40)  # noqa: E731
    np.testing.assert_array_equal(features["history"].numpy(), [[h(5), h(6), h(7)], [-1, -1, -1], [h(9), -1, -1]])
    np.testing.assert_array_equal(features["tags"].numpy(), [[t("a"), -1], [-1, -1], [t("b"), t("c")]])
    assert features["user_id"].shape == (3,)


def test_drop_policy_masks_list_features(tmp_path, list_schema):
    rows = [tiny_row(history=[1], click=0, conversion=1), tiny_row(history=[2, 3], click=1, conversion=1)]
    pipeline = TFRecordPipeline(
        write_rows(tmp_path / "d.tfrecord", rows), list_schema, batch_size=4, invalid_conversion="drop"
    )
    ((features, labels),) = list(pipeline.dataset())
    np.testing.assert_array_equal(features["history"].numpy(), [[_bucket(2, 30), _bucket(3, 30), -1]])
    np.testing.assert_array_equal(labels["conversion"].numpy(), [1])
    assert pipeline.invalid_conversions_dropped == 1


def test_embedding_is_the_mean_over_present_ids():
    layer = FeatureEmbedding({"history": 5}, embedding_dim=2, lists=["history"])
    layer.build(None)
    table = np.arange(10, dtype="float32").reshape(5, 2)
    layer.embeddings["history"].embeddings.assign(table)
    out = layer({"history": np.array([[1, 3, -1], [-1, -1, -1], [4, 4, 0]])}).numpy()
    np.testing.assert_allclose(out, [(table[1] + table[3]) / 2, [0, 0], (2 * table[4] + table[0]) / 3])
    with pytest.raises(ValueError, match=r"`lists` names \['tags'\]"):
        FeatureEmbedding({"history": 5}, lists=["tags"])


def test_gradient_reaches_only_present_rows():
    layer = FeatureEmbedding({"history": 5}, embedding_dim=2, lists=["history"])
    layer.build(None)
    with tf.GradientTape() as tape:
        out = layer({"history": tf.constant([[1, -1], [3, 1]], tf.int64)})
        loss = tf.reduce_sum(out)
    gradient = tf.convert_to_tensor(tape.gradient(loss, layer.embeddings["history"].embeddings)).numpy()
    # Row 1 appears alone in example 0 (weight 1) and in example 1 with weight 1/2; row 3 with 1/2.
    np.testing.assert_allclose(gradient[:, 0], [0, 1.5, 0, 0.5, 0])


def test_trains_exports_and_serves_lists(tmp_path, list_schema):
    rows = [
        tiny_row(user_id=i, history=list(range(i % 4)), tags=[f"t{i % 3}"], click=i % 2, conversion=int(i % 4 == 1))
        for i in range(16)
    ]
    path = write_rows(tmp_path / "train.tfrecord", rows)
    model = models.build("esmm", list_schema, embedding_dim=4, hidden_units=(8,), tower_units=(4,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    pipeline = TFRecordPipeline(path, list_schema, batch_size=8)
    for features, labels in pipeline.dataset():
        logs = model.train_step((features, labels))
    assert np.isfinite(float(logs["loss"]))

    version = export.export_for_serving(model, list_schema, str(tmp_path / "export"), version=1)
    loaded = tf.saved_model.load(version)
    serve = [
        tiny_row(history=[3, 1, 2, 7], tags=["t1"]),
        tiny_row(history=[], tags=["t0", "t2"]),
        tiny_row(history=[2], tags=[]),
    ]
    from_examples = loaded.signatures["serving_default"](
        examples=tf.constant([example_writer.to_example(r).SerializeToString() for r in serve])
    )
    columns = candidates_lib.feature_columns(serve, list_schema)
    np.testing.assert_array_equal(columns["history"], [[3, 1, 2, 7], [-1, -1, -1, -1], [2, -1, -1, -1]])
    assert columns["tags"].tolist() == [["t1", ""], ["t0", "t2"], ["", ""]]
    from_features = loaded.signatures["predict"](**{k: tf.constant(v) for k, v in columns.items()})
    pipeline_inputs = transform.to_model_inputs(
        tf.io.parse_example(
            [example_writer.to_example(r).SerializeToString() for r in serve], transform.feature_spec(list_schema)
        ),
        list_schema,
    )
    in_process = model(pipeline_inputs, training=False)
    for key in ("ctr", "cvr"):
        np.testing.assert_allclose(from_examples[key].numpy(), from_features[key].numpy(), rtol=1e-6)
        np.testing.assert_allclose(from_examples[key].numpy(), in_process[key].numpy(), rtol=1e-5)
    # Warmup requests carry list features, and replaying them succeeds.
    for log in warmup.read_warmup_requests(version):
        request = log.predict_log.request
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        if request.model_spec.signature_name == "predict":
            assert inputs["history"].ndim == 2
        outputs = loaded.signatures[request.model_spec.signature_name](**{k: tf.constant(v) for k, v in inputs.items()})
        assert np.all(np.isfinite(outputs["ctcvr"].numpy()))


def test_candidate_lists_must_be_lists(list_schema):
    with pytest.raises(TypeError, match=r"'history' is a categorical_list: candidate 0 must give a list"):
        candidates_lib.feature_columns([tiny_row(history=3, tags=[])], list_schema)


def test_clients_send_padded_lists_to_the_predict_signature(tmp_path, list_schema):
    from serving import GrpcPredictionClient, RestPredictionClient
    from serving.local import ExportedModels, start_grpc_server, start_rest_server

    model = models.build("esmm", list_schema, embedding_dim=4, hidden_units=(8,), tower_units=(4,))
    base = str(tmp_path / "export")
    export.export_for_serving(model, list_schema, base, version=1)
    candidates = [tiny_row(history=[3, 1, 2, 7], tags=["t1"]), tiny_row(history=[], tags=["t0", "t2"])]
    served = ExportedModels({"cvr": base}, file_system_poll_wait_seconds=0)
    grpc_server, grpc_port = start_grpc_server(served)
    rest_server, rest_port = start_rest_server(served)
    try:
        expected = GrpcPredictionClient(f"localhost:{grpc_port}", "cvr").predict(candidates)
        for client in (
            GrpcPredictionClient(f"localhost:{grpc_port}", "cvr", signature_name="predict", schema=list_schema),
            RestPredictionClient(f"localhost:{rest_port}", "cvr", signature_name="predict", schema=list_schema),
        ):
            scores = client.predict(candidates)
            np.testing.assert_allclose(scores["ctcvr"], expected["ctcvr"], rtol=1e-5)
    finally:
        grpc_server.stop(None).wait()
        rest_server.shutdown()
        served.close()


def test_the_raw_feature_model_takes_padded_lists_of_any_width(tmp_path, list_schema):
    model = models.build("esmm", list_schema, embedding_dim=4, hidden_units=(8,), tower_units=(4,))
    signature = tf.saved_model.load(export.export_for_serving(model, list_schema, str(tmp_path))).signatures["predict"]
    raw = model.raw_feature_model()
    for rows in (
        [tiny_row(history=[3, 1, 2, 7, 9], tags=["t1", "t2", "t3", "t4"]), tiny_row(history=[], tags=["t0"])],
        [tiny_row(history=[5], tags=[])],  # narrower than max_length
    ):
        columns = {name: tf.constant(v) for name, v in candidates_lib.feature_columns(rows, list_schema).items()}
        served = signature(**columns)
        scores = raw(columns)  # a string list as a tensor: Keras' predict refuses 2-D object arrays
        for key in ("ctr", "cvr", "ctcvr"):
            np.testing.assert_allclose(scores[key].numpy(), served[key].numpy(), rtol=1e-6)
