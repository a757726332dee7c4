"""CVR methods, registered by name. Importing this package registers them all."""

from typing import Any

from tfcvr.data import schema as schema_lib
from tfcvr.models import (
    chorus,
    dcmt,
    ddpo,
    division,
    dr_jl,
    esmm,
    evi,
    heuristic_dr,
    multi_dr,
    multi_ipw,
    naive,
    naive_imputation,
    nise,
    oversampling,
    ukd,
)
from tfcvr.models.base import SERVING_OUTPUTS, CVRModel
from tfcvr.models.counterfactual import CounterfactualModel
from tfcvr.models.intercepts import refit_intercepts
from tfcvr.models.registry import alias, get, names, register

alias("joint", "naive")


def build(name: str, schema: schema_lib.Schema | dict, **kwargs: Any) -> CVRModel:
    """The registered method `name` on `schema`; kwargs go to its constructor."""
    return get(name)(schema=schema, **kwargs)
