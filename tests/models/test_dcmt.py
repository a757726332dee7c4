import math

import pytest

from tests.conftest import (
    HAND_CTR,
    HAND_CTR_LOSS,
    HAND_CVR,
    HAND_CVR_ERRORS,
    HAND_LABELS,
    hand_predictions,
    small_model,
)

COUNTERFACTUAL = [0.5, 0.6, 0.3, 0.8]


def test_objective_by_hand():
    terms = {
        k: float(v)
        for k, v in small_model("dcmt")
        .objective(HAND_LABELS, hand_predictions(counterfactual_cvr=COUNTERFACTUAL))
        .items()
    }
    factual = (HAND_CVR_ERRORS[0] / HAND_CTR[0] + HAND_CVR_ERRORS[1] / HAND_CTR[1]) / 4
    # Unclicked rows: target 1 − r = 1 for the counterfactual tower, weighted by 1/(1 − ô).
    counterfactual = (-math.log(0.3) / (1 - HAND_CTR[2]) - math.log(0.8) / (1 - HAND_CTR[3])) / 4
    constraint = sum(abs(r + c - 1) for r, c in zip(HAND_CVR, COUNTERFACTUAL)) / 4
    ctcvr = (-math.log(0.3) - math.log(1 - 0.24) - math.log(1 - 0.18) - math.log(1 - 0.05)) / 4
    assert terms["cvr_loss"] == pytest.approx(factual, rel=1e-5)
    assert terms["counterfactual_loss"] == pytest.approx(counterfactual, rel=1e-5)
    assert terms["constraint_loss"] == pytest.approx(constraint, rel=1e-5)
    assert terms["loss"] == pytest.approx(
        HAND_CTR_LOSS + factual + counterfactual + 1e-3 * constraint + ctcvr, rel=1e-5
    )
