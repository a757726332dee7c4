"""TF Serving warmup requests: `assets.extra/tf_serving_warmup_requests` in each version.

TF Serving replays these PredictionLog records when it loads a version,
before the version serves traffic, so the first real request does not pay for
graph initialisation (TF Serving's "SavedModel Warmup" guide; at most 1,000
records). tfcvr writes one request per signature and batch size, built from
the schema: ids 0..n-1 (as strings for string features; lists of two ids
for categorical_list features) and numeric values 0.
"""

import os
from collections.abc import Iterable

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from tfcvr.data import example_writer
from tfcvr.data import schema as schema_lib
from tfcvr.export.signatures import PREDICT, SERVING_DEFAULT

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# A single candidate and a typical ranking request.
WARMUP_BATCH_SIZES = (1, 100)


def warmup_candidates(schema: schema_lib.Schema, batch_size: int) -> list:
    """`batch_size` candidate dicts with a value for every feature of `schema`."""
    candidates = []
    for i in range(batch_size):
        row: dict[str, float | int | str | list[int | str]] = {}
        for feature in schema.features:
            if not feature.is_categorical:
                row[feature.name] = 0.0
            else:
                ids = [str(j) if feature.tf_dtype == tf.string else j for j in (i, i + 1)]
                row[feature.name] = ids if feature.is_list else ids[0]
        candidates.append(row)
    return candidates


def warmup_requests(schema: schema_lib.Schema, batch_sizes: Iterable[int] = WARMUP_BATCH_SIZES) -> list:
    """PredictionLog records: `serving_default` and `predict` at each batch size."""
    logs = []
    for batch_size in batch_sizes:
        candidates = warmup_candidates(schema, batch_size)
        examples = [example_writer.to_example(c).SerializeToString() for c in candidates]
        by_signature = {
            SERVING_DEFAULT: {"examples": tf.make_tensor_proto(examples, dtype=tf.string)},
            PREDICT: {
                f.name: tf.make_tensor_proto([c[f.name] for c in candidates], dtype=f.tf_dtype) for f in schema.features
            },
        }
        for signature, inputs in by_signature.items():
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=signature))
            for name, tensor in inputs.items():
                request.inputs[name].CopyFrom(tensor)
            logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup_requests(
    saved_model_dir: str, schema: schema_lib.Schema, batch_sizes: Iterable[int] = WARMUP_BATCH_SIZES
) -> str:
    """Writes the warmup records into a SavedModel folder; returns the file's path."""
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for log in warmup_requests(schema, batch_sizes):
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(saved_model_dir: str) -> list:
    """The PredictionLog records of a version's warmup file."""
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in tf.data.TFRecordDataset(path)]
