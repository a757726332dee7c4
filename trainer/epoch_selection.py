"""Which epoch a run keeps: the best validation score among the epochs that do not over-predict observed conversions.

The validation score (`--selection_metric`, by default the CTCVR log loss
over all impressions) sees pCVR only through pCTR · pCVR. Where pCTR is
small that product hides a pCVR that has run away: in the sweep of worlds
(benchmarks/debiasing_sweep.py, docs/benchmarks.md "Sweep of worlds, epochs
and days") the validation CTCVR log loss of runs at CTR 1% kept a third
epoch whose pCVR on the clicked rows was 1.3-1.8x the observed conversions,
and whose CVR log loss over all impressions was up to twice naive's, while
the first epoch of the same runs was sound.

Under positive selection (clicks select for conversion intent, the
leaderboard's `positive_selection`), the entire-space CVR a debiasing method
targets is at most the click-space CVR on every row, so on the validation
split's clicked rows a sound model predicts at most the conversions observed
there, up to their noise: Σ pCVR / Σ conversions ≤ 1 + z / √conversions
(three of the conversion count's relative standard errors, z = `OVER_PREDICTION_Z`;
the sweep's evidence in docs/benchmarks.md: at z = 2 the guard also fired on
sound epochs where the validation split's conversions were low by chance).
An epoch above that is set aside; among the others the selection metric
decides. When every epoch is above, the one closest to the limit is kept and
the run says so. The pCVR judged is the one the epoch's validation scored,
before the served intercepts are refitted: the default refit (pCTR's) leaves
pCVR as trained; `--refit_intercepts=ctcvr` shifts it afterwards.
"""

import dataclasses
import math
from typing import Any

from trainer.recommendation import CALIBRATION_METRIC  # Σ pCVR / Σ conversions over the clicked rows

CONVERSIONS = "conversions"
OVER_PREDICTION_Z = 3.0


def over_prediction_limit(conversions: float, z: float = OVER_PREDICTION_Z) -> float:
    """The highest clicked-row Σ pCVR / Σ conversions an epoch may have: 1 + z/√conversions (∞ without any)."""
    return 1.0 + z / math.sqrt(conversions) if conversions > 0 else math.inf


@dataclasses.dataclass
class Candidate:
    epoch: int
    value: float  # the selection metric
    over_prediction: float  # clicked-row Σ pCVR / Σ conversions over its limit (> 1: set aside; 0 admissible)
    state: Any  # what the caller keeps of the epoch (its weights, its validation outputs)


@dataclasses.dataclass
class EpochSelection:
    """Offered each epoch's validation metrics in turn; `selected` is the epoch to keep.

    Args:
      metric: the selection metric, a key of the metrics offered.
      direction: "min" (log losses) or "max" (AUCs).
      positive_selection: set aside epochs that over-predict the clicked rows' conversions (module docstring);
        False: the selection metric alone.
      z: the standard errors of the conversion count the limit allows (`OVER_PREDICTION_Z`).
    """

    metric: str
    direction: str
    positive_selection: bool = True
    z: float = OVER_PREDICTION_Z
    best: Candidate | None = None  # the best admissible epoch so far
    closest: Candidate | None = None  # of the inadmissible epochs, the one least over its limit
    set_aside: list[int] = dataclasses.field(default_factory=list)  # the epochs over their limit, in order

    def offer(self, epoch: int, metrics: dict, state_fn) -> str:
        """Scores an epoch; `state_fn()` is called only when it may be kept. Returns a note for the log."""
        value = float(metrics[self.metric])
        if self.positive_selection:
            conversions = float(metrics[CONVERSIONS])
            limit = over_prediction_limit(conversions, self.z)
            # Over its limit, or NaN (a diverged epoch): set aside. Without conversions there is nothing to judge by.
            over = float(metrics[CALIBRATION_METRIC]) / limit if conversions > 0 else 0.0
            if not over <= 1.0:
                self.set_aside.append(epoch)
                rank = over if math.isfinite(over) else math.inf
                if self.closest is None or rank < self.closest.over_prediction:
                    self.closest = Candidate(epoch, value, rank, state_fn())
                return (
                    f"set aside: clicked-row pCVR {metrics[CALIBRATION_METRIC]:.3f}x the conversions, above "
                    f"{limit:.3f} (1 + {self.z:g}/√{conversions:.0f})"
                )
        if self.best is None or better(self.direction, value, self.best.value):
            self.best = Candidate(epoch, value, 0.0, state_fn())
            return "best so far"
        return ""

    @property
    def selected(self) -> Candidate:
        """The best admissible epoch, or, when none was, the least over-predicting one."""
        chosen = self.best or self.closest
        if chosen is None:
            raise ValueError("Selecting an epoch needs at least one: `epochs` must be at least 1.")
        return chosen

    @property
    def all_set_aside(self) -> bool:
        """Whether every epoch offered over-predicted (`selected` is then the least over-predicting one)."""
        return self.best is None and self.closest is not None


def selection_direction(metric: str) -> str:
    """ "max" for AUCs, "min" for log losses: the metrics an epoch can be selected on."""
    if metric.endswith("_auc") or metric.endswith("_gauc"):
        return "max"
    if metric.endswith("_nll"):
        return "min"
    raise ValueError(f"--selection_metric must be an AUC or log loss (e.g. ctcvr_auc, cvr_nll). Received: {metric!r}")


def better(direction: str, a: float, b: float) -> bool:
    """Whether value `a` beats `b` (NaN never beats anything)."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return {"max": a > b, "min": a < b, "zero": abs(a) < abs(b), "one": abs(a - 1) < abs(b - 1)}[direction]
