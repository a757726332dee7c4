"""1,000+ seeded random malformed and valid requests: the server answers each one and stays up."""

import random

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfcvr.data import example_writer

ALLOWED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
REQUESTS = 1200


def _random_value(rng):
    return rng.choice(
        [
            rng.randint(-(2**63), 2**63 - 1),
            rng.randint(-5, 5),
            rng.random() * 10 ** rng.randint(-3, 30),
            float("nan"),
            float("inf"),
            "",
            "x" * rng.randint(1, 5000),
            "\u00e9\u4e2d",
            b"\xff\xfe",
            None,
        ]
    )


def _random_candidate(rng):
    row = {
        "user_id": rng.randint(-(2**63), 2**63 - 1),
        "item_cat": rng.choice(["a", "", "\u4e2d" * 50]),
        "price": rng.uniform(-1e6, 1e6),
    }
    mutation = rng.randrange(6)
    if mutation == 1:
        del row[rng.choice(sorted(row))]
    elif mutation == 2:
        row[rng.choice(sorted(row))] = _random_value(rng)
    elif mutation == 3:
        row[f"extra_{rng.randrange(3)}"] = _random_value(rng)
    return {k: v for k, v in row.items() if v is not None}


def _serialized(rng):
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))  # garbage
    serialized = example_writer.to_example(_random_candidate(rng)).SerializeToString()
    if kind == 1:
        return serialized[: rng.randrange(len(serialized) + 1)]  # truncated
    return serialized


def _random_request(rng):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = rng.choice(["cvr"] * 9 + ["missing"])
    request.model_spec.signature_name = rng.choice(["serving_default", "predict", "", "classify"])
    if rng.random() < 0.1:
        request.model_spec.version.value = rng.choice([1, 2, 99])
    size = rng.choice([0, 1, 2, 5, 100])
    if request.model_spec.signature_name in ("serving_default", ""):
        request.inputs["examples"].CopyFrom(
            tf.make_tensor_proto([_serialized(rng) for _ in range(size)], dtype=tf.string)
        )
    else:
        columns = {
            "user_id": np.array([rng.randint(-(2**63), 2**63 - 1) for _ in range(size)], np.int64),
            "item_cat": np.array([rng.choice(["a", "", "b" * 300]) for _ in range(size)], object),
            "price": np.array([rng.uniform(-1e3, 1e3) for _ in range(size)], np.float32),
        }
        mutation = rng.randrange(6)
        if mutation == 1:
            del columns[rng.choice(sorted(columns))]
        elif mutation == 2:
            name = rng.choice(sorted(columns))
            columns[name] = columns[name][: max(0, size - 1)]  # ragged lengths
        elif mutation == 3:
            columns["price"] = columns["price"].astype(np.float64)  # wrong dtype
        elif mutation == 4:
            columns["user_id"] = columns["user_id"].reshape([-1, 1]) if size else columns["user_id"]  # wrong rank
        elif mutation == 5 and size:
            columns["price"][rng.randrange(size)] = float(rng.choice(["nan", "inf", "-inf"]))
        for name, column in columns.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(column))
    return request


def test_fuzzed_requests_are_all_answered_and_the_server_stays_up(served):
    rng = random.Random(20261122)
    channel = grpc.insecure_channel(served["grpc"])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    outcomes = {}
    for _ in range(REQUESTS):
        request = _random_request(rng)
        try:
            response = stub.Predict(request, timeout=10.0)
        except grpc.RpcError as error:
            assert error.code() in ALLOWED, (error.code(), error.details(), request.model_spec)
            outcomes[error.code().name] = outcomes.get(error.code().name, 0) + 1
            continue
        values = tf.make_ndarray(response.outputs["ctcvr"])
        assert np.all((values > 0) & (values < 1)), values
        outcomes["OK"] = outcomes.get("OK", 0) + 1
    assert sum(outcomes.values()) == REQUESTS
    assert outcomes.get("OK", 0) > 100 and outcomes.get("INVALID_ARGUMENT", 0) > 100, outcomes
    # Still serving after the storm.
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "cvr"
    request.inputs["examples"].CopyFrom(
        tf.make_tensor_proto(
            [example_writer.to_example({"user_id": 1, "item_cat": "a", "price": 1.0}).SerializeToString()]
        )
    )
    assert tf.make_ndarray(stub.Predict(request, timeout=10.0).outputs["cvr"]).shape == (1,)
    channel.close()
