"""The REST predict API of `serving.local` (TF Serving's port 8501 API, `POST /v1/models/...:predict`)."""

import base64
import http.server
import json
import re
import threading
from typing import Any, ClassVar

from serving.errors import ServingError
from serving.local.models import ExportedModels, as_exported_models

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?:predict$")
_STATUS = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "UNAVAILABLE": 503}


def _decode_binary(value):
    """TF Serving's JSON: {"b64": "..."} is binary data; anything else is itself."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (ValueError, TypeError) as error:
            raise ServingError("INVALID_ARGUMENT", f"invalid base64 value: {error}") from error
    if isinstance(value, list):
        return [_decode_binary(v) for v in value]
    return value


def _inputs(body, input_names):
    """{input name: values} from a columnar ("inputs") or row ("instances") request body."""
    if not isinstance(body, dict) or ("inputs" in body) == ("instances" in body):
        raise ServingError(
            "INVALID_ARGUMENT",
            "The request body must be a JSON object with exactly one of "
            '"inputs" (columnar) or "instances" (row format)',
        )
    if "inputs" in body:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            if len(input_names) != 1:
                raise ServingError("INVALID_ARGUMENT", f'"inputs" must name the inputs {input_names}')
            columns = {input_names[0]: columns}
        return {name: _decode_binary(values) for name, values in columns.items()}
    rows = body["instances"]
    if not isinstance(rows, list):
        raise ServingError("INVALID_ARGUMENT", '"instances" must be a list')
    if all(isinstance(row, dict) and not set(row) <= {"b64"} for row in rows) and rows:
        names = sorted({name for row in rows for name in row})
        missing = [(i, n) for i, row in enumerate(rows) for n in names if n not in row]
        if missing:
            raise ServingError("INVALID_ARGUMENT", f"instance {missing[0][0]} lacks input {missing[0][1]!r}")
        return {name: _decode_binary([row[name] for row in rows]) for name in names}
    if len(input_names) != 1:
        raise ServingError("INVALID_ARGUMENT", f"instances must be objects naming the inputs {input_names}")
    return {input_names[0]: _decode_binary(rows)}


class _Handler(http.server.BaseHTTPRequestHandler):
    models: ClassVar[ExportedModels]  # set on the subclass `start_rest_server` serves with

    def do_POST(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's name)
        try:
            match = _PATH.match(self.path)
            if not match:
                raise ServingError("NOT_FOUND", f"Malformed request: POST {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError as error:
                raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {error}") from error
            name, version, label = match["name"], match["version"], match["label"]
            signature_name = body.get("signature_name") if isinstance(body, dict) else None
            resolved = self.models.resolve(name, version, label)
            specs = self.models.signature(name, resolved, signature_name).structured_input_signature[1]
            inputs = _inputs(body, sorted(specs))
            _, outputs = self.models.predict(
                name, inputs, version=resolved, signature_name=signature_name, convert_dtypes=True
            )
            reply: dict[str, object]  # the JSON answer: {"outputs": {...}} or {"predictions": [...]}
            if "inputs" in body:
                reply = {"outputs": {key: value.tolist() for key, value in outputs.items()}}
            else:
                size = len(next(iter(outputs.values())))
                reply = {"predictions": [{key: value[i].item() for key, value in outputs.items()} for i in range(size)]}
            self._reply(200, reply)
        except ServingError as error:
            self._reply(_STATUS.get(error.code, 500), {"error": error.message})

    def _reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's signature)
        """Quiet: tests and benchmarks send thousands of requests."""


def start_rest_server(
    models: ExportedModels | dict, labels: dict[str, dict[str, int]] | None = None, port: int = 0
) -> tuple[http.server.ThreadingHTTPServer, int]:
    """Starts the REST API on localhost in a daemon thread; returns (server, port). Stop: `server.shutdown()`.

    `models`: the `ExportedModels` to serve (shared with a gRPC server), or {name: export base} with `labels`
    (an ExportedModels polling each base until the process exits; pass your own to `close()` it sooner).
    """
    handler = type("Handler", (_Handler,), {"models": as_exported_models(models, labels)})
    server = http.server.ThreadingHTTPServer(("localhost", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="local-rest-server").start()
    return server, server.server_address[1]
