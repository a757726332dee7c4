"""CVR methods, registered by name. Importing this package registers them all."""

from tfcvr.models import esmm, naive
from tfcvr.models.base import SERVING_OUTPUTS, CVRModel
from tfcvr.models.registry import get, names, register


def build(name: str, schema, **kwargs) -> CVRModel:
    """The registered method `name` on `schema`; kwargs go to its constructor."""
    return get(name)(schema=schema, **kwargs)
