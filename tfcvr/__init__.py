"""tfcvr: debiased post-click conversion-rate (CVR) rankers in TensorFlow/Keras."""

import sys

__version__ = "0.1.0"

# While `python -m <module>` locates its module, sys.argv[0] is "-m": a command line of this package (or of
# trainer/serving, which import tfcvr first) is starting. Hide TensorFlow's C++ start-up lines before anything
# imports it; a library user's process (a notebook, a script) is left as it is.
if sys.argv[:1] == ["-m"]:
    from tfcvr import cli

    cli.quiet_tensorflow_import()
