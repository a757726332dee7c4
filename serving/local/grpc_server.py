"""The gRPC PredictionService of `serving.local` (TF Serving's port 8500 API)."""

from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.errors import ServingError
from serving.grpc_client import MAX_MESSAGE_BYTES
from serving.local.models import ExportedModels, as_exported_models


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict over `ExportedModels`; errors become gRPC statuses with TF Serving's codes."""

    def __init__(self, models: ExportedModels):
        self.models = models

    def Predict(  # noqa: N802 (the proto's method name)
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        try:
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            inputs = {}
            for name, proto in request.inputs.items():
                try:
                    inputs[name] = tf.make_ndarray(proto)
                except (TypeError, ValueError) as error:
                    raise ServingError("INVALID_ARGUMENT", f"input {name!r} is not a valid tensor: {error}") from error
            served_version, outputs = self.models.predict(
                spec.name,
                inputs,
                version=version,
                version_label=spec.version_label or None,
                signature_name=spec.signature_name or None,
            )
        except ServingError as error:
            context.abort(grpc.StatusCode[error.code], error.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = served_version
        response.model_spec.signature_name = spec.signature_name or "serving_default"
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response


def start_grpc_server(
    models: ExportedModels | dict,
    labels: dict[str, dict[str, int]] | None = None,
    port: int = 0,
    max_workers: int = 4,
) -> tuple[grpc.Server, int]:
    """Starts the service on localhost; returns (grpc.Server, port). Stop it with `server.stop(None).wait()`.

    `models`: the `ExportedModels` to serve (shared with a REST server), or {name: export base} with `labels`
    (an ExportedModels polling each base until the process exits; pass your own to `close()` it sooner).
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(as_exported_models(models, labels)), server
    )
    bound = server.add_insecure_port(f"localhost:{port}")
    if bound == 0:
        raise OSError(f"Could not bind localhost:{port} for the local PredictionService.")
    server.start()
    return server, bound
