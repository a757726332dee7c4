"""A client of TF Serving's gRPC PredictionService (port 8500 by default)."""

from collections.abc import Iterable

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving import candidates as candidates_lib
from serving.errors import ServingError
from serving.options import check_request_options
from serving.retry import RetryPolicy
from tfcvr.export.signatures import SERVING_DEFAULT
from tfcvr.models.base import SERVING_OUTPUTS

# Ranking requests of 1,000 candidates with many features exceed gRPC's 4 MB default.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class GrpcPredictionClient:
    """Scores candidates with a served tfcvr model over gRPC.

    Args:
      target: "host:port" of tensorflow_model_server's gRPC port.
      model_name: the served model's name (`--model_name`, or `name` in the
        model config).
      signature_name: "serving_default" (candidates sent as tf.Examples; any
        candidate form) or "predict" (one tensor per feature; dict candidates).
      version, version_label: pin a version by number or by label ("stable");
        default the newest served version. At most one of them.
      timeout: deadline of each attempt, seconds.
      retry: a `RetryPolicy` (default: 4 attempts on UNAVAILABLE).
      schema: the model's `Schema`, used by "predict" to give each feature its
        dtype (otherwise inferred from the values).
      channel: an open `grpc.Channel` to use instead of `target`.

    Example:
      client = GrpcPredictionClient("localhost:8500", "cvr")
      scores = client.predict([{"user_id": 1, "item_cat": "shoes", "price": 3.5}])
      scores["ctcvr"]  # numpy float32 [1]
    """

    def __init__(
        self,
        target=None,
        model_name=None,
        signature_name=SERVING_DEFAULT,
        version=None,
        version_label=None,
        timeout=1.0,
        retry=None,
        schema=None,
        channel=None,
    ):
        check_request_options(model_name, signature_name, version, version_label, timeout)
        if channel is None and not target:
            raise ValueError("Give `target` (host:port) or an open `channel`.")
        self.model_name = model_name
        self.signature_name = signature_name
        self.version = version
        self.version_label = version_label
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.schema = schema
        self._own_channel = channel is None
        self._channel = channel or grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def request(self, candidates: Iterable[dict | tf.train.Example | bytes]) -> predict_pb2.PredictRequest:
        """The PredictRequest for `candidates`."""
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = self.signature_name
        if self.version is not None:
            request.model_spec.version.value = int(self.version)
        if self.version_label is not None:
            request.model_spec.version_label = self.version_label
        if self.signature_name == SERVING_DEFAULT:
            request.inputs["examples"].CopyFrom(
                tf.make_tensor_proto(candidates_lib.serialized_examples(candidates), dtype=tf.string)
            )
        else:
            for name, column in candidates_lib.feature_columns(candidates, self.schema).items():
                dtype = tf.string if column.dtype == object else tf.as_dtype(column.dtype)
                request.inputs[name].CopyFrom(tf.make_tensor_proto(column, dtype=dtype))
        return request

    def predict(self, candidates: Iterable[dict | tf.train.Example | bytes]) -> dict:
        """{"ctr", "cvr", "ctcvr"} -> float32 numpy arrays of len(candidates); raises `ServingError`."""
        candidates = list(candidates)
        if not candidates:
            return {key: np.zeros([0], np.float32) for key in SERVING_OUTPUTS}
        request = self.request(candidates)
        response = self.retry.call(lambda: self._send(request))
        missing = [key for key in SERVING_OUTPUTS if key not in response.outputs]
        if missing:
            raise ServingError(
                "INTERNAL",
                f"The response of model {self.model_name!r} lacks outputs {missing}; "
                f"it has {sorted(response.outputs)}. Is it a tfcvr export?",
            )
        return {key: tf.make_ndarray(response.outputs[key]).astype(np.float32) for key in SERVING_OUTPUTS}

    def _send(self, request):
        try:
            return self._stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(error.code().name, error.details() or str(error)) from error

    def close(self) -> None:
        if self._own_channel:
            self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
