"""Optimizers by name, for the command lines (`--optimizer`)."""

import keras

from tfcvr.optimizers.lazy_adam import LazyAdam

OPTIMIZERS = {"adam": keras.optimizers.Adam, "lazy_adam": LazyAdam}


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A fresh optimizer; `lazy_adam` updates only the embedding rows a batch looks up."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}.")
    return OPTIMIZERS[name](learning_rate)
