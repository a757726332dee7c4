"""A client of TF Serving's REST API (`POST /v1/models/NAME:predict`, port 8501 by default)."""

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from serving import candidates as candidates_lib
from serving.errors import ServingError
from serving.options import check_request_options
from serving.retry import RetryPolicy
from tfcvr.export.signatures import SERVING_DEFAULT
from tfcvr.models.base import SERVING_OUTPUTS

# TF Serving's REST status codes follow its gRPC codes (util/net_http/status mapping).
_HTTP_CODES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class RestPredictionClient:
    """Scores candidates with a served tfcvr model over REST, in the columnar ("inputs") format.

    serving_default sends `{"inputs": {"examples": [{"b64": ...}, ...]}}`
    (binary tf.Examples are base64 objects in TF Serving's JSON); predict
    sends `{"inputs": {feature: [values]}}`. Both read `{"outputs": {"ctr":
    [...], ...}}`. Arguments as `GrpcPredictionClient`, with `server` a
    "host:port" or "http://host:port" of the REST port.
    """

    def __init__(
        self,
        server,
        model_name,
        signature_name=SERVING_DEFAULT,
        version=None,
        version_label=None,
        timeout=1.0,
        retry=None,
        schema=None,
    ):
        if not server:
            raise ValueError("`server` (host:port of the REST API) is required.")
        check_request_options(model_name, signature_name, version, version_label, timeout)
        base = server if server.startswith(("http://", "https://")) else f"http://{server}"
        path = f"/v1/models/{model_name}"
        if version is not None:
            path += f"/versions/{int(version)}"
        elif version_label is not None:
            path += f"/labels/{version_label}"
        self.url = f"{base.rstrip('/')}{path}:predict"
        self.model_name = model_name
        self.signature_name = signature_name
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.schema = schema

    def body(self, candidates: Iterable[dict | tf.train.Example | bytes]) -> dict:
        """The JSON request body for `candidates`."""
        if self.signature_name == SERVING_DEFAULT:
            inputs = {
                "examples": [
                    {"b64": base64.b64encode(e).decode("ascii")} for e in candidates_lib.serialized_examples(candidates)
                ]
            }
        else:
            inputs = {
                name: _json_values(column.tolist())
                for name, column in candidates_lib.feature_columns(candidates, self.schema).items()
            }
        return {"signature_name": self.signature_name, "inputs": inputs}

    def predict(self, candidates: Iterable[dict | tf.train.Example | bytes]) -> dict:
        """{"ctr", "cvr", "ctcvr"} -> float32 numpy arrays of len(candidates); raises `ServingError`."""
        candidates = list(candidates)
        if not candidates:
            return {key: np.zeros([0], np.float32) for key in SERVING_OUTPUTS}
        data = json.dumps(self.body(candidates)).encode()
        outputs = self.retry.call(lambda: self._send(data)).get("outputs")
        if not isinstance(outputs, dict) or any(key not in outputs for key in SERVING_OUTPUTS):
            raise ServingError(
                "INTERNAL",
                f"The response of {self.url} lacks the outputs {list(SERVING_OUTPUTS)}: {str(outputs)[:200]}",
            )
        return {key: np.asarray(outputs[key], np.float32).reshape([-1]) for key in SERVING_OUTPUTS}

    def _send(self, data):
        request = urllib.request.Request(self.url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                message = json.loads(text).get("error", text)
            except ValueError:
                message = text
            raise ServingError(_HTTP_CODES.get(error.code, f"HTTP_{error.code}"), message) from error
        except (TimeoutError, urllib.error.URLError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            code = "DEADLINE_EXCEEDED" if isinstance(reason, TimeoutError) else "UNAVAILABLE"
            raise ServingError(code, f"{self.url}: {reason}") from error


def _json_values(values):
    """Nested lists with bytes decoded (JSON has no bytes); categorical_list columns are 2-D."""
    if isinstance(values, list):
        return [_json_values(v) for v in values]
    return values.decode() if isinstance(values, bytes) else values
