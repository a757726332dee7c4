"""Data: schema.json, the TFRecord input pipeline, the simulator and writers."""

from tfcvr.data.columns import feature_columns
from tfcvr.data.errors import DataError
from tfcvr.data.pipeline import TFRecordPipeline, has_ground_truth, resolve_files
from tfcvr.data.schema import Feature, Schema, load_schema, save_schema
from tfcvr.data.statistics import label_rates, numeric_statistics, training_statistics
