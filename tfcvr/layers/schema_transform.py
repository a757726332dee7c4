"""Raw feature values to a model's inputs, inside a Keras model."""

from typing import Any

import keras
import tensorflow as tf

from tfcvr.data import schema as schema_lib
from tfcvr.data import transform


@keras.saving.register_keras_serializable(package="tfcvr")
class SchemaTransform(keras.layers.Layer):
    """Hashes categorical ids and casts numerics as the schema says (`tfcvr.data.transform.to_model_inputs`).

    The function the training pipeline and the exported signatures apply,
    as a layer: `CVRModel.raw_feature_model` puts it in front of a model so
    that it takes raw values (string or int64 ids, float numerics, padded
    lists). Any id is valid (hashed); it has no weights.

    Args:
      schema: a `Schema` or its dict form.
    """

    def __init__(self, schema: schema_lib.Schema | dict, **kwargs: Any):
        super().__init__(**kwargs)
        self.schema = schema_lib.Schema.from_dict(schema) if isinstance(schema, dict) else schema

    def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        missing = sorted(f.name for f in self.schema.features if f.name not in inputs)
        if missing:
            raise ValueError(f"SchemaTransform: raw features {missing} are missing; the schema needs them all.")
        return transform.to_model_inputs(inputs, self.schema)

    def get_config(self) -> dict:
        return {**super().get_config(), "schema": self.schema.to_dict()}
