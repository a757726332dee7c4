"""tfcvr: debiased post-click conversion-rate (CVR) rankers in TensorFlow/Keras.

The public API is one module down:

* `tfcvr.models`: `names()`, `build(name, schema, **kwargs)`, `get(name)`,
  `CVRModel` (every method a Keras model: `fit`, `save`/`keras.models.load_model`,
  `raw_feature_model()`).
* `tfcvr.data`: `Schema`, `load_schema`, `TFRecordPipeline`,
  `training_statistics` (`numeric_statistics`, `label_rates`), `feature_columns`; `from tfcvr.data import simulate`
  for the simulator with ground truth.
* `tfcvr.metrics`: `evaluate(model, dataset)`, `compute_metrics`,
  `format_table`, `paired_difference`.
* `tfcvr.export`: `export_for_serving` (TF Serving's layout), versions and
  retention; `from tfcvr.export import model_config` for TF Serving's
  config files (a command line too, so not imported by the package).
* `tfcvr.layers`, `tfcvr.losses`, `tfcvr.optimizers`: the building blocks.

`import tfcvr` imports these modules, which registers every method and layer as a
Keras serializable: `keras.models.load_model("m.keras")` then needs no
`custom_objects`. README.md, section "Python API", has a notebook-sized
example.
"""

import sys

__version__ = "0.1.0"

# While `python -m <module>` locates its module, sys.argv[0] is "-m": a command line of this package (or of
# trainer/serving, which import tfcvr first) is starting. Hide TensorFlow's C++ start-up lines before anything
# imports it; a library user's process (a notebook, a script) is left as it is.
if sys.argv[:1] == ["-m"]:
    from tfcvr import cli

    cli.quiet_tensorflow_import()

from tfcvr import data, export, layers, losses, metrics, models, optimizers  # noqa: E402 (after the quiet import)

__all__ = ["__version__", "data", "export", "layers", "losses", "metrics", "models", "optimizers"]
