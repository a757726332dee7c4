"""Converters from public datasets' raw and preprocessed layouts and from CSV/Parquet logs to TFRecord."""

from tfcvr.data.convert.report import ConversionError, ConversionReport

__all__ = ["ConversionError", "ConversionReport"]
