r"""Score candidates with a served tfcvr model and print ctr, cvr, ctcvr per candidate.

    python -m serving.client --server=localhost:8500 --model=cvr --input=candidates.jsonl
        [--protocol=grpc|rest] [--signature=serving_default|predict] [--version=N | --label=stable]
        [--schema=schema.json (with --signature=predict)] [--timeout=1.0] [--attempts=4] [--json]

--input is JSON lines (one candidate dict per line), a JSON list of dicts, or
a TFRecord file of tf.Examples (.tfrecord, .tfrecords, .tfr; label keys are
ignored by the model). gRPC is TF Serving's port 8500, REST its port 8501.
"""

import json
import sys

import tensorflow as tf
from absl import app, flags

from serving.errors import ServingError
from serving.grpc_client import GrpcPredictionClient
from serving.rest_client import RestPredictionClient
from serving.retry import RetryPolicy
from tfcvr import cli
from tfcvr.data import schema as schema_lib
from tfcvr.export.signatures import PREDICT, SERVING_DEFAULT

FLAGS = flags.FLAGS
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfr")


def _define_flags():
    flags.DEFINE_string("server", None, "host:port of TF Serving (gRPC 8500 or REST 8501).", required=True)
    flags.DEFINE_string("model", None, "Served model name.", required=True)
    flags.DEFINE_string("input", None, "Candidates: .jsonl, .json or a TFRecord of tf.Examples.", required=True)
    flags.DEFINE_enum("protocol", "grpc", ["grpc", "rest"], "API to call.")
    flags.DEFINE_enum("signature", SERVING_DEFAULT, [SERVING_DEFAULT, PREDICT], "Serving signature.")
    flags.DEFINE_integer("version", None, "Pin a model version.")
    flags.DEFINE_string("label", None, "Pin a version label (e.g. stable).")
    flags.DEFINE_string("schema", None, "schema.json of the model (needed by --signature=predict).")
    flags.DEFINE_float("timeout", 1.0, "Deadline of each attempt, seconds.")
    flags.DEFINE_integer("attempts", 4, "Attempts in all when the server is UNAVAILABLE.")
    flags.DEFINE_bool("json", False, "Print one JSON object per candidate instead of a table.")


def read_candidates(path: str) -> list:
    """Candidate dicts (JSON) or serialized tf.Example bytes (TFRecord) from `path`."""
    if path.endswith(TFRECORD_SUFFIXES):
        try:
            return [record.numpy() for record in tf.data.TFRecordDataset(path)]
        except tf.errors.OpError as error:
            raise ValueError(f"{path}: not a readable TFRecord file: {error.message}") from error
    with tf.io.gfile.GFile(path) as f:
        text = f.read()
    if text.lstrip().startswith("["):
        try:
            candidates = json.loads(text)
        except ValueError as error:
            raise ValueError(f"{path}: invalid JSON: {error}") from error
    else:
        candidates = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    candidates.append(json.loads(line))
                except ValueError as error:
                    raise ValueError(f"{path}:{number}: invalid JSON line: {error}") from error
    bad = [i for i, c in enumerate(candidates) if not isinstance(c, dict)]
    if bad:
        raise ValueError(f"{path}: candidate(s) {bad[:10]} are not JSON objects of feature values.")
    return candidates


def main(argv: list[str]) -> int:
    del argv
    if FLAGS.version is not None and FLAGS.label:
        raise app.UsageError("Give --version or --label, not both.")
    if FLAGS.signature == PREDICT and not FLAGS.schema:
        raise app.UsageError(
            "--signature=predict needs --schema: it names the features (label keys in the "
            "candidates are left out) and gives each its dtype."
        )
    try:
        candidates = read_candidates(FLAGS.input)
    except (ValueError, tf.errors.NotFoundError) as error:
        raise app.UsageError(str(error)) from error
    schema = schema_lib.load_schema(FLAGS.schema) if FLAGS.schema else None
    client_class = GrpcPredictionClient if FLAGS.protocol == "grpc" else RestPredictionClient
    client = client_class(
        FLAGS.server,
        FLAGS.model,
        signature_name=FLAGS.signature,
        version=FLAGS.version,
        version_label=FLAGS.label,
        timeout=FLAGS.timeout,
        retry=RetryPolicy(max_attempts=FLAGS.attempts),
        schema=schema,
    )
    try:
        scores = client.predict(candidates)
    except (ServingError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    keys = ("ctr", "cvr", "ctcvr")
    if FLAGS.json:
        for i in range(len(candidates)):
            print(json.dumps({"candidate": i, **{k: float(scores[k][i]) for k in keys}}))
    else:
        print(f"{'candidate':>9}  {'ctr':>10}  {'cvr':>10}  {'ctcvr':>10}")
        for i in range(len(candidates)):
            print(f"{i:>9}  " + "  ".join(f"{float(scores[k][i]):>10.6f}" for k in keys))
    return 0


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
