"""From parsed tf.Example tensors to model inputs; shared by training and serving.

One parsing spec and one hashing function serve the input pipeline and the
exported serving signatures, so a model sees the same bucket ids in both.
"""

import tensorflow as tf

from tfcvr.data import schema as schema_lib


def feature_spec(schema: schema_lib.Schema) -> dict:
    """`tf.io.parse_example` spec of the model features.

    One value per example, except a categorical_list: any number of values
    (parsed as a `tf.SparseTensor`).
    """
    return {
        f.name: tf.io.VarLenFeature(f.tf_dtype) if f.is_list else tf.io.FixedLenFeature([], f.tf_dtype)
        for f in schema.features
    }


def label_spec(schema: schema_lib.Schema, ground_truth: bool = False) -> dict:
    """Spec of the two labels (int64 0/1) and, optionally, the simulator's ground truth."""
    spec = {schema.labels[key]: tf.io.FixedLenFeature([], tf.int64) for key in schema_lib.LABEL_KEYS}
    if ground_truth:
        spec.update({k: tf.io.FixedLenFeature([], tf.float32) for k in schema_lib.GROUND_TRUTH_FLOAT_KEYS})
        spec.update({k: tf.io.FixedLenFeature([], tf.int64) for k in schema_lib.GROUND_TRUTH_INT_KEYS})
    return spec


def raw_input_signature(schema: schema_lib.Schema) -> dict:
    """TensorSpecs of raw (un-hashed) feature values.

    [batch] per feature; [batch, any length] for a categorical_list, whose
    rows are padded with the feature's `padding` value (-1 or "").
    """
    return {
        f.name: tf.TensorSpec([None, None] if f.is_list else [None], f.tf_dtype, name=f.name) for f in schema.features
    }


def hash_categorical(values: tf.Tensor, num_buckets: int) -> tf.Tensor:
    """Maps any int64 id (negative or huge) or string to [0, num_buckets).

    The bucket is Fingerprint64 (farmhash64) mod num_buckets, of a string's
    bytes (what `tf.strings.to_hash_bucket_fast` computes) or of an int64's
    8 bytes. Int64 ids are not formatted as decimal strings first: that
    conversion would be most of the cost of hashing a batch.
    """
    return hash_columns([values], [num_buckets])[0]


def hash_columns(columns: list, num_buckets: list) -> list:
    """`hash_categorical` of several same-shaped columns of one dtype, in one pass.

    One `tf.fingerprint` and one modulo for all columns instead of ops per
    column: the input pipeline hashes every categorical feature of a batch
    this way.
    """
    stacked = tf.stack(columns, axis=-1)
    # fingerprint hashes each row of its input: one string, or one int64's bytes (little-endian platforms).
    rows = tf.reshape(stacked, [-1] if stacked.dtype == tf.string else [-1, 1])
    fingerprints = tf.bitcast(tf.fingerprint(rows, method="farmhash64"), tf.uint64)
    buckets = tf.math.floormod(tf.reshape(fingerprints, tf.shape(stacked)), tf.constant(num_buckets, dtype=tf.uint64))
    return tf.unstack(tf.cast(buckets, tf.int64), num=len(columns), axis=-1)


def hash_categorical_list(values: tf.Tensor | tf.SparseTensor, feature: schema_lib.Feature) -> tf.Tensor:
    """Ids of a categorical_list -> [batch, max_length] bucket ids padded with -1.

    `values` is a `tf.SparseTensor` (from `parse_example`) or a dense
    [batch, length] tensor padded with `feature.padding`. Padding values are
    removed wherever they are, the first `max_length` remaining ids are kept
    and hashed like a categorical value; -1 marks the empty slots.
    """
    if isinstance(values, tf.SparseTensor):
        ragged = tf.RaggedTensor.from_sparse(values)
    else:
        ragged = tf.RaggedTensor.from_tensor(values)
    ragged = tf.ragged.boolean_mask(ragged, tf.not_equal(ragged, feature.padding))
    ragged = ragged[:, : feature.max_length]
    hashed = tf.ragged.map_flat_values(hash_categorical, ragged, feature.num_buckets)
    return hashed.to_tensor(default_value=-1, shape=[None, feature.max_length])


def to_model_inputs(raw_features: dict, schema: schema_lib.Schema) -> dict:
    """Hashes categorical features and casts numeric ones: the model's input dict."""
    inputs = {}
    singles = [f for f in schema.categorical if not f.is_list]
    for dtype in schema_lib.CATEGORICAL_DTYPES:
        group = [f for f in singles if f.dtype == dtype]
        if group:
            hashed = hash_columns([raw_features[f.name] for f in group], [f.num_buckets for f in group])
            inputs.update({f.name: ids for f, ids in zip(group, hashed)})
    for feature in schema.lists:
        inputs[feature.name] = hash_categorical_list(raw_features[feature.name], feature)
    for feature in schema.numeric:
        inputs[feature.name] = tf.cast(raw_features[feature.name], tf.float32)
    return {f.name: inputs[f.name] for f in schema.features}
