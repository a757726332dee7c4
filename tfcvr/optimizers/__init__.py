"""Optimizers for CVR rankers: `LazyAdam` (sparse embedding updates) and the by-name factory."""

from tfcvr.optimizers.factory import (
    DEFAULT_SCHEDULE,
    OPTIMIZERS,
    SCHEDULES,
    learning_rate_schedule,
    make_optimizer,
    needs_steps_per_epoch,
)
from tfcvr.optimizers.lazy_adam import LazyAdam

__all__ = [
    "DEFAULT_SCHEDULE",
    "OPTIMIZERS",
    "SCHEDULES",
    "LazyAdam",
    "learning_rate_schedule",
    "make_optimizer",
    "needs_steps_per_epoch",
]
