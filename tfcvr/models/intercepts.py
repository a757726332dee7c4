"""Refitting a trained model's served intercepts on its training data (the `intercept_calibration` layer's offsets).

Why: a short run cannot finish fitting its output biases. Adam moves a bias by
about one learning rate per step whatever its gradient, while the rest of the
network keeps moving the heads' mean logit, and a warm-started day starts from
yesterday's rates; so even on the impressions it was trained on, a model's
Σ pCTR and Σ pCTCVR miss the label counts by several percent, alike for every
method of a run. Solving for pCTR's intercept (and, on request, for pCVR's
through pCTCVR) closes that gap exactly. Fitted on the training split rather
than the validation split: the validation
split holds a seventh of the conversions, and intercepts fitted there moved the
held-out calibration further from the truth than no refit at all
(docs/benchmarks.md, "Calibration of the served outputs", has the measurements).
"""

import contextlib
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf
from scipy import optimize, special

from tfcvr.layers.intercept_calibration import EPSILON, InterceptCalibration
from tfcvr.metrics import prediction

# Offsets are solved within ±BRACKET logits: wider than any intercept error a trained model leaves.
BRACKET = 20.0


# What a refit matches over the training impressions (`refit_intercepts`' `target`).
TARGETS = ("ctr", "ctcvr")


class RefitError(ValueError):
    """The training data or the model's predictions leave an intercept offset undetermined."""


def refit_intercepts(model: keras.Model, dataset: tf.data.Dataset, target: str = "ctr") -> dict:
    """Sets `model`'s served intercept offsets from the label counts of `dataset` (the training impressions).

    `dataset`: (features, labels) batches, each impression read once
    (unshuffled is fine). The ctr offset a solves Σ σ(logit pCTR + a) = Σ click.
    `target`:
      "ctr": only a; pCVR is served as the method trained it.
      "ctcvr": a, then the cvr offset b solving
        Σ σ(logit pCTR + a)·σ(logit pCVR + b) = Σ click·conversion, so that
        pCTCVR = pCTR × pCVR, what a bid multiplies, matches the conversions
        too. One shift of pCVR's logit over all impressions: it sets the
        level of pCVR where clicks are likely, which is what a
        propensity-weighted or entire-space method moves on purpose (its pCVR
        is meant for every impression, and where clicks and conversions share
        a hidden cause the true CVR times the true CTR does not add up to the
        conversions), so it undoes part of what debiasing changed.
    Offsets are solved from the model's unshifted outputs (earlier offsets are
    replaced, not added to).

    Returns {"ctr_offset", "cvr_offset", "examples", "clicks", "conversions"}.
    Raises RefitError (a ValueError) when the data leave an offset undetermined
    (no click, every impression clicked, or, for "ctcvr", no conversion) or the
    predictions are saturated beyond any offset.
    """
    if target not in TARGETS:
        raise ValueError(f"`target` must be one of {list(TARGETS)}. Received: {target!r}")
    with offsets_restored(model, zero=True):
        predictions, labels = prediction.collect_predictions(model, dataset)
    ctr_offset, cvr_offset, counts = solve_offsets(predictions, labels, target)  # an error leaves them as they were
    layer = _layer(model)
    layer.ctr_offset.assign(ctr_offset)
    layer.cvr_offset.assign(cvr_offset)
    return {"ctr_offset": ctr_offset, "cvr_offset": cvr_offset, **counts}


@contextlib.contextmanager
def offsets_restored(model: keras.Model, zero: bool = False) -> Iterator[None]:
    """Puts `model`'s served intercept offsets back as they were on exit; `zero`: serve the heads as trained inside."""
    layer = _layer(model)
    saved = (layer.ctr_offset.numpy(), layer.cvr_offset.numpy())
    try:
        if zero:
            layer.ctr_offset.assign(0.0)
            layer.cvr_offset.assign(0.0)
        yield
    finally:
        layer.ctr_offset.assign(saved[0])
        layer.cvr_offset.assign(saved[1])


def _layer(model: keras.Model) -> InterceptCalibration:
    layer = model.get_layer("intercept_calibration")
    if not isinstance(layer, InterceptCalibration):
        raise TypeError(f"{model.name}'s layer 'intercept_calibration' is a {type(layer).__name__}.")
    return layer


def refit_or_skip(model: keras.Model, dataset: tf.data.Dataset, target: str) -> dict:
    """`refit_intercepts`, or {"skipped": why} when the data leave an offset undetermined (the heads then serve as
    trained): a log whose every impression was clicked still trains, evaluates and exports."""
    try:
        return refit_intercepts(model, dataset, target=target)
    except RefitError as e:
        return {"skipped": str(e)}


def _logit(probability: np.ndarray) -> np.ndarray:
    return special.logit(np.clip(probability.astype(np.float64), EPSILON, 1.0 - EPSILON))


def served_offsets(model: keras.Model) -> tuple[float, float]:
    """(ctr offset, cvr offset) that `model` serves now."""
    layer = _layer(model)
    return float(layer.ctr_offset.numpy()), float(layer.cvr_offset.numpy())


def shifted(predictions: dict, ctr_offset: float, cvr_offset: float) -> dict:
    """`predictions` (NumPy, made with the offsets at 0) as the model serves them with these offsets: σ(logit p + a)
    for ctr, σ(logit p + b) for cvr, ctcvr their product (`InterceptCalibration` in NumPy); other outputs as given."""
    if ctr_offset == 0.0 and cvr_offset == 0.0:
        return dict(predictions)
    ctr = special.expit(_logit(predictions["ctr"]) + ctr_offset)
    cvr = special.expit(_logit(predictions["cvr"]) + cvr_offset)
    return {**predictions, "ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr}


def solve_offsets(predictions: dict, labels: dict, target: str) -> tuple[float, float, dict]:
    """(ctr offset, cvr offset, label counts) that `refit_intercepts` sets, from predictions made with the offsets
    at 0 and their labels (NumPy); raises RefitError as it does."""
    clicks = labels["click"].astype(np.float64)
    conversions = clicks * labels["conversion"]
    counts = {"examples": len(clicks), "clicks": int(clicks.sum()), "conversions": int(conversions.sum())}
    if not 0 < counts["clicks"] < counts["examples"] or (target == "ctcvr" and counts["conversions"] == 0):
        needs = " and at least one conversion" if target == "ctcvr" else ""
        raise RefitError(
            f"Refitting the served {target} intercepts needs impressions with and without clicks{needs}; the "
            f"training data hold {counts['examples']} impressions, {counts['clicks']} clicks and "
            f"{counts['conversions']} conversions. Train on more data or turn the refit off (--refit_intercepts=none)."
        )
    ctr_logit = _logit(predictions["ctr"])
    ctr_offset = _root(lambda a: special.expit(ctr_logit + a).sum() - counts["clicks"], "ctr")
    if target == "ctr":
        return ctr_offset, 0.0, counts
    cvr_logit = _logit(predictions["cvr"])
    ctr = special.expit(ctr_logit + ctr_offset)
    cvr_offset = _root(lambda b: (ctr * special.expit(cvr_logit + b)).sum() - counts["conversions"], "cvr")
    return ctr_offset, cvr_offset, counts


def _root(excess, task: str) -> float:
    """The offset where `excess` (increasing in it) is 0, within ±BRACKET."""
    low, high = excess(-BRACKET), excess(BRACKET)
    if not low < 0 < high:
        raise RefitError(
            f"The {task} intercept offset needed to match the training labels is beyond ±{BRACKET:g} logits: "
            "the model's predictions are saturated at 0 or 1."
        )
    return float(optimize.brentq(excess, -BRACKET, BRACKET, xtol=1e-9))
