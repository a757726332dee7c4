"""Names of the serving signatures every tfcvr export has (the contract: docs/serving.md)."""

# Serialized tf.Example in `examples` -> ctr, cvr, ctcvr.
SERVING_DEFAULT = "serving_default"
# One raw tensor per schema feature -> ctr, cvr, ctcvr.
PREDICT = "predict"
