r"""Run the in-process stand-in for tensorflow_model_server (for trying the clients without Docker).

    python -m serving.local --model=cvr=/tmp/chorus/export [--model=...] [--label=cvr:stable=N] \
        [--grpc_port=8500] [--rest_port=8501]

Serves until interrupted. Production serving is TF Serving (README, "Serving").
"""

import contextlib
import threading

from absl import app, flags, logging

from serving.local.grpc_server import start_grpc_server
from serving.local.rest_server import start_rest_server
from tfcvr import cli
from tfcvr.export.model_config import parse_model_flags

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", None, "name=export_base, once per model.", required=True)
flags.DEFINE_multi_string("label", [], "name:label=version.")
flags.DEFINE_integer("grpc_port", 8500, "gRPC PredictionService port (0 = any free port).")
flags.DEFINE_integer("rest_port", 8501, "REST API port (0 = any free port).")


def main(argv: list[str]) -> None:
    del argv
    try:
        models, labels = parse_model_flags(FLAGS.model, FLAGS.label)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    grpc_server, grpc_port = start_grpc_server(models, labels, port=FLAGS.grpc_port)
    rest_server, rest_port = start_rest_server(models, labels, port=FLAGS.rest_port)
    logging.info("Serving %s: gRPC localhost:%d, REST http://localhost:%d", sorted(models), grpc_port, rest_port)
    print(f"gRPC localhost:{grpc_port} REST localhost:{rest_port}", flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is stopped
            threading.Event().wait()
    finally:
        grpc_server.stop(None)
        rest_server.shutdown()


if __name__ == "__main__":
    cli.run(main)
