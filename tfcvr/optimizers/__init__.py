"""Optimizers for CVR rankers: `LazyAdam` (sparse embedding updates) and the by-name factory."""

from tfcvr.optimizers.factory import OPTIMIZERS, make_optimizer
from tfcvr.optimizers.lazy_adam import LazyAdam

__all__ = ["OPTIMIZERS", "LazyAdam", "make_optimizer"]
