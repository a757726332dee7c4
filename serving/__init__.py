"""Clients of TF Serving for tfcvr exports (gRPC and REST), and a local stand-in server for tests."""

import tfcvr  # noqa: F401, I001  (first: hides TensorFlow's start-up lines when a command line starts)

from serving.errors import ServingError
from serving.grpc_client import GrpcPredictionClient
from serving.rest_client import RestPredictionClient
from serving.retry import RetryPolicy
