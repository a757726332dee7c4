"""Optional dependencies: which extra installs each, and one clear error when a feature needs a missing one.

`pip install .` carries what training, evaluation and the TF Serving export
need. Plots, Parquet input, Vertex AI submission and tuning, and Apache Beam
are extras (setup.py `extras_require`), each imported only by the feature
that uses it, through `require`.
"""

import importlib
from types import ModuleType

# module -> the extra of setup.py that installs it.
EXTRAS = {
    "matplotlib": "plots",
    "pyarrow.parquet": "parquet",
    "google.cloud.aiplatform": "vertex",
    "google.cloud.aiplatform_v1.types": "vertex",
    "hypertune": "vertex",
    "packaging.requirements": "vertex",
    "packaging.specifiers": "vertex",
}


class MissingDependencyError(ImportError):
    """A feature's optional dependency is not installed; the message names the feature and the pip command."""


def require(module: str, feature: str) -> ModuleType:
    """`module`, imported; or MissingDependencyError naming `feature` and `pip install "tfcvr[<extra>]"`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra = EXTRAS[module]
        raise MissingDependencyError(
            f'{feature} needs {module.split(".")[0]} ({e}): pip install "tfcvr[{extra}]" (or ".[{extra}]" '
            "in a checkout of the repository)."
        ) from None
