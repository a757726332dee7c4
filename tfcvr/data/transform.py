"""From parsed tf.Example tensors to model inputs; shared by training and serving.

One parsing spec and one hashing function serve the input pipeline and the
exported serving signatures, so a model sees the same bucket ids in both.
"""

import tensorflow as tf

from tfcvr.data import schema as schema_lib


def feature_spec(schema: schema_lib.Schema) -> dict:
    """`tf.io.parse_example` spec of the model features: one value per example."""
    return {f.name: tf.io.FixedLenFeature([], f.tf_dtype) for f in schema.features}


def label_spec(schema: schema_lib.Schema, ground_truth: bool = False) -> dict:
    """Spec of the two labels (int64 0/1) and, optionally, the simulator's ground truth."""
    spec = {schema.labels[key]: tf.io.FixedLenFeature([], tf.int64) for key in schema_lib.LABEL_KEYS}
    if ground_truth:
        spec.update({k: tf.io.FixedLenFeature([], tf.float32) for k in schema_lib.GROUND_TRUTH_FLOAT_KEYS})
        spec.update({k: tf.io.FixedLenFeature([], tf.int64) for k in schema_lib.GROUND_TRUTH_INT_KEYS})
    return spec


def raw_input_signature(schema: schema_lib.Schema) -> dict:
    """TensorSpecs of raw (un-hashed) feature values, one per example."""
    return {f.name: tf.TensorSpec([None], f.tf_dtype, name=f.name) for f in schema.features}


def hash_categorical(values: tf.Tensor, num_buckets: int) -> tf.Tensor:
    """Maps any int64 id (negative or huge) or string to [0, num_buckets).

    Ids are hashed through their decimal string, so the int64 id 42 and the
    string "42" land in the same bucket: a schema may switch a feature's dtype
    without invalidating trained embeddings.
    """
    if values.dtype != tf.string:
        values = tf.strings.as_string(values)
    return tf.strings.to_hash_bucket_fast(values, num_buckets)


def to_model_inputs(raw_features: dict, schema: schema_lib.Schema) -> dict:
    """Hashes categorical features and casts numeric ones: the model's input dict."""
    inputs = {}
    for feature in schema.features:
        value = raw_features[feature.name]
        if feature.is_categorical:
            inputs[feature.name] = hash_categorical(value, feature.num_buckets)
        else:
            inputs[feature.name] = tf.cast(value, tf.float32)
    return inputs
