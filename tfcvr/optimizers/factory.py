"""Optimizers and learning-rate schedules by name, for the command lines (`--optimizer`, `--learning_rate_schedule`).

Why `cosine_per_epoch` decays within every epoch: with a constant learning
rate, Adam keeps moving every weight by about the learning rate per step, and
with rare labels (CTR of a few percent, CTCVR of a few per mille) the batch
to batch noise of the label counts moves the output's log-odds with it. The
weights a run ends on are then one draw of that noise: on a 500k-row
simulated log at CTR 3.8%, Σ pCTR / clicks on held-out rows swung between
0.68 and 1.19 within one epoch (measured every 30 steps), and every method
trained on the same data order ends on the same draw, so whole runs
over-predict together. A cosine decay to zero over each epoch, restarted at
the next (Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm
Restarts", ICLR 2017, https://arxiv.org/abs/1608.03983), ends every epoch on
settled weights, so every epoch's snapshot (what epoch selection compares and
what is exported) is calibrated as well as the model can be, at no cost per
step. It is the default since the task heads start at their labels' base
rates (`CVRModel(label_rates=...)`): from sigmoid(0) = 1/2 a short run's
decayed rate stopped before the output biases reached the base rates.
`constant` is the papers' recipe (Adam at a fixed rate). docs/benchmarks.md,
section "Learning-rate schedule", has the measurements.
"""

import keras

from tfcvr.optimizers.adam import Adam
from tfcvr.optimizers.lazy_adam import LazyAdam

OPTIMIZERS = {"adam": Adam, "lazy_adam": LazyAdam}
SCHEDULES = ("cosine_per_epoch", "constant")
DEFAULT_SCHEDULE = "cosine_per_epoch"


def needs_steps_per_epoch(schedule: str) -> bool:
    """Whether `schedule`'s learning rate depends on the steps of one epoch (its period)."""
    return schedule != "constant"


def learning_rate_schedule(
    schedule: str, learning_rate: float, steps_per_epoch: int | None = None
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate of `schedule`: a float for `constant`, a Keras schedule over the optimizer's steps otherwise.

    `cosine_per_epoch`: learning_rate · (1 + cos(π · t / steps_per_epoch)) / 2
    with t the optimizer's step within the current epoch (Keras'
    `CosineDecayRestarts` with equal periods and peaks), so it needs
    `steps_per_epoch`, the optimizer steps of one pass over the training
    data.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown learning-rate schedule {schedule!r}; expected one of {list(SCHEDULES)}.")
    if not needs_steps_per_epoch(schedule):
        return learning_rate
    if steps_per_epoch is None or steps_per_epoch < 1:
        raise ValueError(
            f"The {schedule!r} learning-rate schedule needs the steps of one epoch (a positive count). "
            f"Received: {steps_per_epoch}"
        )
    return keras.optimizers.schedules.CosineDecayRestarts(
        learning_rate, first_decay_steps=steps_per_epoch, t_mul=1.0, m_mul=1.0, alpha=0.0
    )


def make_optimizer(
    name: str, learning_rate: float, schedule: str = DEFAULT_SCHEDULE, steps_per_epoch: int | None = None
) -> keras.optimizers.Optimizer:
    """A fresh optimizer with `schedule`'s learning rate; `lazy_adam` updates only the embedding rows a batch looks up.

    A method's second optimizer (`CVRModel.optimizer_copy`) is made from this
    one's config, so it follows the same schedule over its own steps.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}.")
    return OPTIMIZERS[name](learning_rate_schedule(schedule, learning_rate, steps_per_epoch))
