"""trainer.recommendation: the rule that names the method to ship from validation metrics alone."""

import math

import pytest

from trainer import recommendation


def _runs(d_nll, pcoc=(1.0, 1.0, 1.0), ctcvr_nll=(0.1, 0.1, 0.1)):
    return [{"d_cvr_nll": d, "cvr_pcoc": p, "ctcvr_nll": c, "cvr_nll": d} for d, p, c in zip(d_nll, pcoc, ctcvr_nll)]


def test_lowest_d_nll_wins_and_a_paired_test_says_whether_the_runner_up_is_separated():
    board = {
        "naive": _runs([0.50, 0.52, 0.51]),
        "esmm": _runs([0.40, 0.43, 0.41]),  # lowest, far from the others
        "dcmt": _runs([0.45, 0.47, 0.455]),
    }
    advice = recommendation.recommend(board)
    assert (advice["recommended"], advice["runner_up"]) == ("esmm", "dcmt")
    assert [name for name, _, _ in advice["ranking"]] == ["esmm", "dcmt", "naive"]
    assert advice["ranking"][0][1] == pytest.approx((0.40 + 0.43 + 0.41) / 3)
    assert advice["p_value"] < 0.05 and advice["separated"]
    text = recommendation.recommendation_markdown(advice)
    assert "Ship **esmm**" in text and "Runner-up: **dcmt**" in text and "separates them" in text

    board["dcmt"] = _runs([0.42, 0.41, 0.42])  # paired differences change sign: not separable
    advice = recommendation.recommend(board)
    assert advice["runner_up"] == "dcmt" and not advice["separated"]
    assert "cannot separate" in recommendation.recommendation_markdown(advice)


def test_guards_set_aside_diverged_collapsed_and_worse_ctcvr_methods():
    board = {
        "naive": _runs([0.50, 0.52, 0.51]),
        "dr_jl": _runs([0.30, float("nan"), 0.31]),  # a diverged run
        "nise": _runs([0.20, 0.21, 0.22], pcoc=(1.0, 0.03, 1.0)),  # collapsed calibration
        "ukd": _runs([0.25, 0.26, 0.27], pcoc=(1.9, 2.1, 1.95)),  # 2.1x on clicks
        "ddpo": _runs([0.35, 0.36, 0.37], ctcvr_nll=(0.12, 0.121, 0.123)),  # serves a worse pCTCVR
        "esmm": _runs([0.45, 0.46, 0.47], ctcvr_nll=(0.101, 0.099, 0.1)),  # within noise of naive: kept
    }
    advice = recommendation.recommend(board)
    assert advice["recommended"] == "esmm" and advice["runner_up"] == "naive"
    assert set(advice["excluded"]) == {"dr_jl", "nise", "ukd", "ddpo"}
    assert "run 2 diverged" in advice["excluded"]["dr_jl"] and "d_cvr_nll" in advice["excluded"]["dr_jl"]
    assert "0.030 outside [0.5, 2.0]" in advice["excluded"]["nise"]
    assert "2.100" in advice["excluded"]["ukd"]
    assert "ctcvr_nll" in advice["excluded"]["ddpo"] and "worse than naive" in advice["excluded"]["ddpo"]
    assert "- nise:" in recommendation.recommendation_markdown(advice)


def test_a_method_ranking_the_clicked_rows_worse_than_naive_by_more_than_0_02_is_set_aside():
    def ranked(d_nll, auc):
        return [{**run, "cvr_auc": a} for run, a in zip(_runs(d_nll), auc)]

    board = {
        "naive": ranked([0.50, 0.52, 0.51], (0.70, 0.72, 0.71)),
        "division": ranked([0.40, 0.41, 0.42], (0.66, 0.69, 0.69)),  # 0.0300 below on average: set aside
        "nise": ranked([0.45, 0.46, 0.47], (0.65, 0.72, 0.73)),  # 0.0100 below on average (one run 0.05): kept
    }
    advice = recommendation.recommend(board)
    assert advice["recommended"] == "nise" and set(advice["excluded"]) == {"division"}
    assert advice["excluded"]["division"] == (
        "cvr_auc on clicked rows 0.0300 below naive's on average (more than 0.02): ranks the observed conversions worse"
    )
    # A run without an AUC (its clicked rows hold one class, for every method alike) is left out of the pairs.
    for runs in board.values():
        runs[0]["cvr_auc"] = float("nan")
    advice = recommendation.recommend(board)
    assert set(advice["excluded"]) == {"division"} and "0.0250 below" in advice["excluded"]["division"]
    assert "nise" not in advice["excluded"]  # 0.01 above over runs 2 and 3
    for runs in board.values():
        for run in runs:
            run["cvr_auc"] = float("nan")
    assert not recommendation.recommend(board)["excluded"]  # nothing to judge by


def test_positive_selection_sets_aside_methods_predicting_above_naive_on_clicked_rows():
    # pcoc of one run's models share the denominator (the same clicked rows' conversions): their ratio is the
    # ratio of Σ pCVR. ukd: 1.20/1.00, 1.10/1.00, 1.00/0.90 -> geometric mean
    # (1.2*1.1*1.1111)^(1/3) = 1.46667^(1/3) = 1.1361.
    board = {
        "naive": _runs([0.50, 0.52, 0.51], pcoc=(1.0, 1.0, 0.9)),
        "ukd": _runs([0.40, 0.41, 0.42], pcoc=(1.2, 1.1, 1.0)),  # best D-NLL, above naive on clicks
        "escm2_ipw": _runs([0.45, 0.46, 0.47], pcoc=(0.8, 1.05, 0.85)),  # above in one run only: kept
    }
    advice = recommendation.recommend(board)
    assert advice["recommended"] == "escm2_ipw" and advice["runner_up"] == "naive"
    assert set(advice["excluded"]) == {"ukd"} and "1.136x naive's pCVR on clicked rows" in advice["excluded"]["ukd"]
    assert "Assumes positive selection" in recommendation.recommendation_markdown(advice)

    advice = recommendation.recommend(board, positive_selection=False)
    assert advice["recommended"] == "ukd" and not advice["excluded"]
    assert "Positive selection not assumed" in recommendation.recommendation_markdown(advice)


def test_one_run_and_no_eligible_method():
    advice = recommendation.recommend({"naive": _runs([0.5]), "esmm": _runs([0.4])})
    assert advice["recommended"] == "esmm" and math.isnan(advice["p_value"]) and not advice["separated"]
    assert "n/a (one run)" in recommendation.recommendation_markdown(advice)
    nothing = recommendation.recommend({"naive": _runs([0.5], pcoc=(3.0,))})
    assert nothing["recommended"] is None and "No method passes" in recommendation.recommendation_markdown(nothing)
    with pytest.raises(ValueError, match="'naive', which has no validation metrics"):
        recommendation.recommend({"esmm": _runs([0.4])})
