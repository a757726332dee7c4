"""Optimizers for CVR rankers: `Adam` (a fused kernel per variable), `LazyAdam` (sparse rows), the factory."""

from tfcvr.optimizers.adam import Adam
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
    "Adam",
    "DEFAULT_SCHEDULE",
    "OPTIMIZERS",
    "SCHEDULES",
    "LazyAdam",
    "learning_rate_schedule",
    "make_optimizer",
    "needs_steps_per_epoch",
]
