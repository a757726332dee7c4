r"""Run the in-process stand-in for tensorflow_model_server (for trying the clients and the lifecycle without Docker).

    python -m serving.local --model=cvr=/tmp/chorus/export [--model=...] [--label=cvr:stable=N] \
        [--latest_versions=2] [--grpc_port=8500] [--rest_port=8501]
    python -m serving.local --model_config_file=models.config --model_config_file_poll_wait_seconds=10

Takes TF Serving's flags of the same names: the model config file (with its
version policies and labels, re-read every poll so an edited label applies
without a restart) or --model/--label, and the file system poll that picks up
new versions. Serves until interrupted. Production serving is TF Serving
(docs/serving.md).
"""

import contextlib
import threading

import tensorflow as tf
from absl import app, flags, logging

from serving.local.grpc_server import start_grpc_server
from serving.local.models import ExportedModels, served_models
from serving.local.rest_server import start_rest_server
from tfcvr import cli
from tfcvr.export.model_config import parse_model_flags

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", [], "name=export_base, once per model (or --model_config_file).")
flags.DEFINE_multi_string("label", [], "name:label=version (the version must be served: see --latest_versions).")
flags.DEFINE_integer("latest_versions", 1, "With --model: serve the newest N versions of each model.", lower_bound=1)
flags.DEFINE_string(
    "model_config_file", None, "A text-format ModelServerConfig (tfcvr.export.model_config writes one)."
)
flags.DEFINE_float(
    "model_config_file_poll_wait_seconds", 0, "Seconds between re-reads of --model_config_file; 0: read once."
)
flags.DEFINE_float(
    "file_system_poll_wait_seconds", 1, "Seconds between polls of the export bases for new versions; 0: once."
)
flags.DEFINE_integer("grpc_port", 8500, "gRPC PredictionService port (0 = any free port).")
flags.DEFINE_integer("rest_port", 8501, "REST API port (0 = any free port).")


def main(argv: list[str]) -> None:
    del argv
    if bool(FLAGS.model) == bool(FLAGS.model_config_file):
        raise app.UsageError("Give either --model (with --label) or --model_config_file.")
    try:
        if FLAGS.model_config_file:
            if FLAGS.label:
                raise ValueError("--label goes into the --model_config_file (version_labels), not on the command line.")
            if not tf.io.gfile.exists(FLAGS.model_config_file):
                raise ValueError(f"--model_config_file={FLAGS.model_config_file}: no such file")
            served = None
        else:
            models, labels = parse_model_flags(FLAGS.model, FLAGS.label)
            served = served_models(models, labels, FLAGS.latest_versions)
        exported = ExportedModels(
            served,
            file_system_poll_wait_seconds=FLAGS.file_system_poll_wait_seconds,
            model_config_file=FLAGS.model_config_file,
            model_config_file_poll_wait_seconds=FLAGS.model_config_file_poll_wait_seconds,
        )
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    grpc_server, grpc_port = start_grpc_server(exported, port=FLAGS.grpc_port)
    rest_server, rest_port = start_rest_server(exported, port=FLAGS.rest_port)
    names = exported.model_names()
    logging.info("Serving %s: gRPC localhost:%d, REST http://localhost:%d", names, grpc_port, rest_port)
    print(f"gRPC localhost:{grpc_port} REST localhost:{rest_port}", flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is stopped
            threading.Event().wait()
    finally:
        exported.close()
        grpc_server.stop(None).wait()
        rest_server.shutdown()


if __name__ == "__main__":
    cli.run(main)
