"""tfcvr: debiased post-click conversion-rate (CVR) rankers in TensorFlow/Keras."""

__version__ = "0.1.0"
