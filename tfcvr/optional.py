"""Optional dependencies: which extra installs each, and one clear error when a feature needs a missing one.

`pip install .` carries what training, evaluation and the TF Serving export
need. Plots, Parquet input, Vertex AI submission and tuning, and Apache Beam
are extras (setup.py `extras_require`), each imported only by the feature
that uses it, through `require`.
"""

import importlib
from types import ModuleType

# module -> (the extra of setup.py that installs it, the package that provides it).
EXTRAS = {
    "matplotlib": ("plots", "matplotlib"),
    "pyarrow.parquet": ("parquet", "pyarrow"),
    "google.cloud.aiplatform": ("vertex", "google-cloud-aiplatform"),
    "google.cloud.aiplatform_v1.types": ("vertex", "google-cloud-aiplatform"),
    "hypertune": ("vertex", "cloudml-hypertune"),
    "packaging.requirements": ("vertex", "packaging"),
    "packaging.specifiers": ("vertex", "packaging"),
}


class MissingDependencyError(ImportError):
    """A feature's optional dependency is not installed; the message names the feature and the pip command."""


def require(module: str, feature: str) -> ModuleType:
    """`module`, imported; or MissingDependencyError naming `feature` and `pip install "tfcvr[<extra>]"`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra, package = EXTRAS[module]
        raise MissingDependencyError(
            f'{feature} needs {package} ({e}): pip install "tfcvr[{extra}]" (or ".[{extra}]" in a checkout of the '
            "repository)."
        ) from None
