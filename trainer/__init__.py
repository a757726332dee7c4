"""The command lines: train (task), compare (benchmark), score an export (evaluate), submit to Vertex AI (vertex)."""

import tfcvr  # noqa: F401  (first: hides TensorFlow's start-up lines when a command line starts)
