"""Which method to ship, from what a real log shows: validation metrics only, no ground truth.

The rule (docs/leaderboard.md):

1. Guards. A method is set aside when any run's validation metrics are not
   finite (a diverged run), when any run's Σ pCVR / Σ conversions on clicked
   rows (`cvr_pcoc`) leaves [0.5, 2] (a collapsed calibration: a wide band,
   because a method that is right over the entire space may sit below the
   clicked rows' rate when clicks select for intent), or when its CTCVR log
   loss over all impressions, a proper scoring rule of what a ranker serves,
   is worse than naive's with paired p < 0.05, or when its CVR AUC on the
   clicked rows is below naive's by more than 0.02 on average over runs (the
   soundness bound of benchmarks/debiasing_quality.py): it ranks the observed
   conversions worse than the baseline, what a ranker multiplies into bids.
   Replayed over the sweep of worlds it changed one pick: at CTR 1% it set
   aside division (validation CVR AUC 0.030-0.056 below naive's) and the
   pick went to nise, with a lower oracle CVR log loss (docs/benchmarks.md).
   Under positive selection (the default, `positive_selection=True`), a
   method is also set aside when its mean pCVR on the clicked rows exceeds
   naive's (geometric mean over paired runs of the ratio of their Σ pCVR on
   the same clicked rows). Naive is fitted by log loss on the clicked rows,
   so it estimates the click-space CVR P(conversion | x, click); when clicks
   select for purchase intent, as in ads and e-commerce logs, the
   entire-space CVR P(conversion | x) that a debiasing method targets is at
   most that, on every row. A method predicting above naive where the
   conversions are observed over-predicts there and, by the same selection,
   more so on the unclicked rows no validation metric sees. Naive itself
   always passes (ratio 1). The threshold is 1, no tolerance: over the
   sweep of worlds (benchmarks/debiasing_sweep.py, docs/benchmarks.md "Sweep of
   worlds, epochs and days") tolerances of 5-20% let methods through that over-predict
   the unclicked rows and moved picks further from the best method. Set
   `positive_selection=False` for a log where clicks may select against
   conversion.
2. Score. The remaining methods are ranked by validation D-NLL: the CVR log
   loss on clicked rows weighted by 1/pCTR of one reference CTR model (naive's,
   the same for every method). It is the inverse-propensity estimate of the
   CVR log loss over every impression, unbiased when clicks depend on the
   features alone and the reference pCTR is calibrated (Zhang et al., "Large-
   scale Causal Approaches to Debiasing Post-click Conversion Rate
   Estimation with Multi-task Learning", WWW 2020,
   https://doi.org/10.1145/3366423.3380037), and the only entire-space CVR
   loss a log without ground truth can estimate. When clicks also depend on
   something no feature carries, no observable metric sees the unclicked
   space's CVR: D-NLL then prefers methods that fit the clicked space, and
   only the positive-selection guard keeps a method that over-predicts the
   unclicked rows out of the ranking.
3. Evidence. The lowest mean is recommended and the second named as the
   runner-up; a paired t-test over runs of their D-NLL says whether the
   evidence separates them (p < 0.05) or not.
"""

import math

import numpy as np

from tfcvr.metrics import paired_p_value

SCORE_METRIC = "d_cvr_nll"
CALIBRATION_METRIC = "cvr_pcoc"
CALIBRATION_BAND = (0.5, 2.0)
GUARD_METRIC = "ctcvr_nll"
# A method whose mean validation CVR AUC on clicked rows is this far below naive's is set aside.
RANKING_METRIC = "cvr_auc"
RANKING_TOLERANCE = 0.02
SIGNIFICANCE_LEVEL = 0.05
# A method's Σ pCVR over naive's on the same clicked rows above which positive selection sets it aside.
POSITIVE_SELECTION_RATIO = 1.0
OBSERVED_METRICS = (SCORE_METRIC, CALIBRATION_METRIC, GUARD_METRIC, "cvr_nll")


def recommend(validation: dict, baseline: str = "naive", positive_selection: bool = True) -> dict:
    """The rule of the module docstring over {method: [validation metrics of each run]}.

    Runs are paired: run r of every method used the same seed and the same
    validation rows. Returns
    {"recommended", "runner_up", "p_value", "separated", "ranking":
    [(method, mean, sd)], "excluded": {method: reason}}; "recommended" is None
    when every method is excluded.
    """
    if baseline not in validation:
        raise ValueError(f"The recommendation compares against {baseline!r}, which has no validation metrics.")
    excluded, ranking = {}, []
    for name, runs in validation.items():
        reason = _exclusion(name, runs, validation[baseline], baseline, positive_selection)
        if reason:
            excluded[name] = reason
            continue
        scores = _column(runs, SCORE_METRIC)
        ranking.append((name, float(scores.mean()), float(scores.std(ddof=1)) if scores.size > 1 else 0.0))
    ranking.sort(key=lambda entry: entry[1])
    recommended = ranking[0][0] if ranking else None
    runner_up = ranking[1][0] if len(ranking) > 1 else None
    p_value = float("nan")
    if runner_up is not None:
        p_value = paired_p_value(
            _column(validation[recommended], SCORE_METRIC), _column(validation[runner_up], SCORE_METRIC)
        )
    return {
        "recommended": recommended,
        "runner_up": runner_up,
        "p_value": p_value,
        "separated": bool(p_value < SIGNIFICANCE_LEVEL),
        "ranking": ranking,
        "excluded": excluded,
        "positive_selection": positive_selection,
    }


def _exclusion(name, runs, baseline_runs, baseline, positive_selection):
    """Why `name` is set aside by the guards, or None."""
    for index, run in enumerate(runs):
        bad = [m for m in OBSERVED_METRICS if not math.isfinite(run.get(m, float("nan")))]
        if bad:
            return f"run {index + 1} diverged: validation {', '.join(bad)} not finite"
    low, high = CALIBRATION_BAND
    for index, run in enumerate(runs):
        if not low <= run[CALIBRATION_METRIC] <= high:
            return (
                f"run {index + 1}: clicked-row calibration {CALIBRATION_METRIC}={run[CALIBRATION_METRIC]:.3f} "
                f"outside [{low}, {high}]"
            )
    if name != baseline:
        ours, theirs = _column(runs, GUARD_METRIC), _column(baseline_runs, GUARD_METRIC)
        p_value = paired_p_value(ours, theirs)
        if ours.mean() > theirs.mean() and p_value < SIGNIFICANCE_LEVEL:
            return (
                f"{GUARD_METRIC} {ours.mean():.5f} worse than {baseline}'s {theirs.mean():.5f} (paired p={p_value:.3g})"
            )
        # Paired by run, over the runs with an AUC on both sides (none where the clicked rows hold one class).
        differences = [
            run.get(RANKING_METRIC, math.nan) - base.get(RANKING_METRIC, math.nan)
            for run, base in zip(runs, baseline_runs)
        ]
        finite = [d for d in differences if math.isfinite(d)]
        ranking = float(np.mean(finite)) if finite else 0.0
        if ranking < -RANKING_TOLERANCE:
            return (
                f"{RANKING_METRIC} on clicked rows {-ranking:.4f} below {baseline}'s on average "
                f"(more than {RANKING_TOLERANCE}): ranks the observed conversions worse"
            )
        if positive_selection:
            # Σ pCVR / Σ conversions over the same clicked rows: the ratio of two runs' pcoc is the ratio of
            # their Σ pCVR, free of the conversions' sampling noise.
            ratio = float(
                np.exp(np.mean(np.log(_column(runs, CALIBRATION_METRIC) / _column(baseline_runs, CALIBRATION_METRIC))))
            )
            if ratio > POSITIVE_SELECTION_RATIO:
                return (
                    f"predicts {ratio:.3f}x {baseline}'s pCVR on clicked rows (geometric mean over runs), "
                    "above the click-space CVR (positive selection)"
                )
    return None


def _column(runs, metric):
    return np.array([run[metric] for run in runs], np.float64)


def recommendation_markdown(recommendation: dict) -> str:
    """The recommendation as a few markdown lines."""
    ranking = {name: (mean, sd) for name, mean, sd in recommendation["ranking"]}
    lines = ["## Recommendation (validation metrics only, no ground truth)", ""]
    best, runner_up = recommendation["recommended"], recommendation["runner_up"]
    if best is None:
        lines.append("No method passes the guards; see the exclusions below.")
    else:
        lines.append(
            f"Ship **{best}**: lowest validation D-NLL {ranking[best][0]:.5f} ± {ranking[best][1]:.5f} "
            "(CVR log loss on clicks weighted by 1/pCTR of naive's CTR model)."
        )
        if runner_up is not None:
            verdict = (
                "the evidence separates them"
                if recommendation["separated"]
                else "the evidence cannot separate them: either is a sound choice"
            )
            p_text = "n/a (one run)" if math.isnan(recommendation["p_value"]) else f"{recommendation['p_value']:.3g}"
            lines.append(
                f"Runner-up: **{runner_up}** ({ranking[runner_up][0]:.5f} ± {ranking[runner_up][1]:.5f}); "
                f"paired t-test p = {p_text}: {verdict}."
            )
    lines += [
        "",
        "Assumes positive selection (clicks select for conversion intent): a method predicting above "
        "naive on clicked rows is set aside."
        if recommendation["positive_selection"]
        else "Positive selection not assumed (--positive_selection=false): pCVR above naive's on clicked rows "
        "is not a guard.",
    ]
    if recommendation["excluded"]:
        lines += ["", "Set aside by the guards:"]
        lines += [f"- {name}: {reason}" for name, reason in recommendation["excluded"].items()]
    return "\n".join(lines) + "\n"
