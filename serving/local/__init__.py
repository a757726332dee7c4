"""An in-process stand-in for tensorflow_model_server over tfcvr exports: gRPC PredictionService and REST predict.

No TF Serving binary can be installed on our build machines (no Docker
engine; not on PyPI or Debian), so tests and benchmarks run the real clients
(`serving.grpc_client`, `serving.rest_client`) against this. It answers what
a client can observe of TF Serving for the Predict API: model / version /
label resolution (NOT_FOUND otherwise), the signature's inputs checked by
name, dtype and rank (INVALID_ARGUMENT), TensorFlow's own INVALID_ARGUMENT
errors from the signature, and TF Serving's REST JSON (columnar "inputs" and
row "instances", {"b64": ...} binaries, {"error": ...} bodies). It is not a
production server: no request batching, no
Classify/Regress/MultiInference/GetModelMetadata. It follows TF Serving's
version lifecycle (`serving.local.models`): version policies, background
loading of new versions, labels only on loaded versions, and a polled model
config file for label moves (rollback).
"""

from serving.local.grpc_server import start_grpc_server
from serving.local.models import ExportedModels, ServedModel, parse_served_models, served_models
from serving.local.rest_server import start_rest_server
