import functools
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving import GrpcPredictionClient, RestPredictionClient, RetryPolicy, ServingError
from serving.local import start_rest_server
from tests.conftest import tiny_row
from tfcvr.data import example_writer, transform

# Generous deadlines against the shared stand-in: the other test worker competes for the 2 cores.
CLIENTS = {
    "grpc": functools.partial(GrpcPredictionClient, timeout=10.0),
    "rest": functools.partial(RestPredictionClient, timeout=10.0),
}
ROWS = [tiny_row(user_id=i * 7919 - 3, item_cat=f"c{i}", price=float(i) / 3) for i in range(6)]


def _expected(served, version=2, rows=ROWS):
    features = {f.name: tf.constant([r[f.name] for r in rows], f.tf_dtype) for f in served["schema"].features}
    outputs = served["models"][version](transform.to_model_inputs(features, served["schema"]), training=False)
    return {key: outputs[key].numpy() for key in ("ctr", "cvr", "ctcvr")}


@pytest.mark.parametrize("protocol", sorted(CLIENTS))
@pytest.mark.parametrize("signature", ["serving_default", "predict"])
def test_round_trip_from_dicts_and_examples(served, protocol, signature):
    client = CLIENTS[protocol](served[protocol], "cvr", signature_name=signature, schema=served["schema"])
    scores = client.predict(ROWS)
    expected = _expected(served)
    for key in ("ctr", "cvr", "ctcvr"):
        assert scores[key].dtype == np.float32 and scores[key].shape == (6,)
        np.testing.assert_allclose(scores[key], expected[key], rtol=1e-5, atol=1e-7)
    if signature == "serving_default":
        examples = [example_writer.to_example(r) for r in ROWS]
        np.testing.assert_allclose(client.predict(examples)["ctcvr"], expected["ctcvr"], rtol=1e-5)
        serialized = [e.SerializeToString() for e in examples]
        np.testing.assert_allclose(client.predict(serialized)["ctcvr"], expected["ctcvr"], rtol=1e-5)
    assert client.predict([])["cvr"].shape == (0,)


@pytest.mark.parametrize("protocol", sorted(CLIENTS))
def test_version_and_label_selection(served, protocol):
    newest = CLIENTS[protocol](served[protocol], "cvr").predict(ROWS)["ctcvr"]
    pinned = CLIENTS[protocol](served[protocol], "cvr", version=1).predict(ROWS)["ctcvr"]
    stable = CLIENTS[protocol](served[protocol], "cvr", version_label="stable").predict(ROWS)["ctcvr"]
    np.testing.assert_allclose(newest, _expected(served, 2)["ctcvr"], rtol=1e-5)
    np.testing.assert_allclose(pinned, _expected(served, 1)["ctcvr"], rtol=1e-5)
    np.testing.assert_allclose(stable, pinned, rtol=1e-6)
    assert not np.allclose(newest, pinned)
    for kwargs in ({"version": 3}, {"version_label": "canary"}):
        with pytest.raises(ServingError) as error:
            CLIENTS[protocol](served[protocol], "cvr", **kwargs).predict(ROWS)
        assert error.value.code == "NOT_FOUND" and error.value.attempts == 1
    with pytest.raises(ServingError, match="NOT_FOUND"):
        CLIENTS[protocol](served[protocol], "ctr").predict(ROWS)


@pytest.mark.parametrize("protocol", sorted(CLIENTS))
def test_bad_requests_are_invalid_argument_and_not_retried(served, protocol):
    client = CLIENTS[protocol](served[protocol], "cvr", retry=RetryPolicy(max_attempts=3, sleep=lambda s: None))
    for candidates, message in (
        ([b"\x00garbage"], "Could not parse example input"),
        ([{"user_id": 1, "price": 1.0}], "item_cat"),
        ([{"user_id": 1, "item_cat": "a", "price": float("inf")}], "NaN or Inf"),
    ):
        with pytest.raises(ServingError, match=message) as error:
            client.predict(candidates)
        assert error.value.code == "INVALID_ARGUMENT" and error.value.attempts == 1


class _FlakyService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """UNAVAILABLE for the first `failures` calls, then ctr = cvr = 0.5; sleeps `delay` seconds per call."""

    def __init__(self, failures, delay=0.0):
        self.failures, self.delay, self.calls = failures, delay, 0

    def Predict(self, request, context):  # noqa: N802
        self.calls += 1
        time.sleep(self.delay)
        if self.calls <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "model is loading")
        size = len(request.inputs["examples"].string_val)
        response = predict_pb2.PredictResponse()
        for key, value in (("ctr", 0.5), ("cvr", 0.5), ("ctcvr", 0.25)):
            response.outputs[key].CopyFrom(tf.make_tensor_proto(np.full([size], value, np.float32)))
        return response


def _serve(servicer):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    return server, f"localhost:{port}"


def test_grpc_retries_unavailable_with_backoff_then_succeeds():
    service = _FlakyService(failures=2)
    server, target = _serve(service)
    sleeps = []
    try:
        policy = RetryPolicy(max_attempts=4, initial_backoff=0.1, multiplier=2.0, sleep=sleeps.append)
        scores = GrpcPredictionClient(target, "cvr", retry=policy).predict(ROWS[:3])
        assert service.calls == 3 and np.allclose(scores["ctcvr"], 0.25)
        assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.1 and 0 <= sleeps[1] <= 0.2  # full jitter, capped growth
        service.calls, service.failures = 0, 10
        with pytest.raises(ServingError) as error:
            GrpcPredictionClient(target, "cvr", retry=RetryPolicy(max_attempts=3, sleep=lambda s: None)).predict(ROWS)
        assert error.value.code == "UNAVAILABLE" and error.value.attempts == 3 and service.calls == 3
    finally:
        server.stop(None).wait()


def test_grpc_deadline_is_not_retried():
    service = _FlakyService(failures=0, delay=0.5)
    server, target = _serve(service)
    try:
        client = GrpcPredictionClient(target, "cvr", timeout=0.1, retry=RetryPolicy(sleep=lambda s: None))
        started = time.perf_counter()
        with pytest.raises(ServingError) as error:
            client.predict(ROWS)
        assert error.value.code == "DEADLINE_EXCEEDED" and error.value.attempts == 1
        assert time.perf_counter() - started < 0.45
    finally:
        server.stop(None).wait()


def test_unreachable_server_is_unavailable_after_every_attempt():
    policy = RetryPolicy(max_attempts=2, sleep=lambda s: None)
    for client in (
        GrpcPredictionClient("localhost:1", "cvr", timeout=0.5, retry=policy),
        RestPredictionClient("localhost:1", "cvr", timeout=0.5, retry=policy),
    ):
        with pytest.raises(ServingError) as error:
            client.predict(ROWS)
        assert error.value.code == "UNAVAILABLE" and error.value.attempts == 2


def test_rest_retries_503(served):
    server, port = start_rest_server(served["exported"])
    real_handler = server.RequestHandlerClass.do_POST
    calls = []

    def flaky(handler):
        calls.append(1)
        if len(calls) == 1:
            handler._reply(503, {"error": "Servable not available"})
        else:
            real_handler(handler)

    server.RequestHandlerClass.do_POST = flaky
    try:
        scores = CLIENTS["rest"](f"localhost:{port}", "cvr", retry=RetryPolicy(sleep=lambda s: None)).predict(ROWS)
        assert len(calls) == 2
        np.testing.assert_allclose(scores["ctcvr"], _expected(served)["ctcvr"], rtol=1e-5)
    finally:
        server.shutdown()


def test_client_arguments_are_checked():
    with pytest.raises(ValueError, match="not both"):
        GrpcPredictionClient("localhost:1", "cvr", version=1, version_label="stable")
    with pytest.raises(ValueError, match="`signature_name` must be"):
        RestPredictionClient("localhost:1", "cvr", signature_name="classify")
    with pytest.raises(TypeError, match="Candidate 0 is a int"):
        GrpcPredictionClient("localhost:1", "cvr").predict([3])
    with pytest.raises(ValueError, match="`max_attempts` must be at least 1"):
        RetryPolicy(max_attempts=0)


def test_concurrent_requests(served):
    client = CLIENTS["grpc"](served["grpc"], "cvr")
    results = [None] * 8

    def worker(i):
        results[i] = client.predict(ROWS)["ctcvr"]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        np.testing.assert_allclose(result, _expected(served)["ctcvr"], rtol=1e-5)
