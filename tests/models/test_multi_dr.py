import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import (
    HAND_CTR,
    HAND_CTR_LOSS,
    HAND_CVR_ERRORS,
    HAND_LABELS,
    hand_predictions,
    small_model,
    tiny_features,
    variables_named,
)
from tfcvr import losses

IMPUTED = [0.2, 0.4, 1.0, 0.3]


def test_objective_by_hand():
    terms = small_model("multi_dr").objective(HAND_LABELS, hand_predictions(imputed_error=IMPUTED))
    deviation = [HAND_CVR_ERRORS[i] - IMPUTED[i] for i in (0, 1)]
    dr = sum(IMPUTED) / 4 + (deviation[0] / HAND_CTR[0] + deviation[1] / HAND_CTR[1]) / 4  # Eq. 9
    imputation = (deviation[0] ** 2 / HAND_CTR[0] + deviation[1] ** 2 / HAND_CTR[1]) / 4
    assert float(terms["cvr_loss"]) == pytest.approx(dr, rel=1e-5)
    assert float(terms["imputation_loss"]) == pytest.approx(imputation, rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(HAND_CTR_LOSS + dr + imputation, rel=1e-5)
    escm2 = small_model("escm2_dr").objective(HAND_LABELS, hand_predictions(imputed_error=IMPUTED))
    assert float(escm2["loss"]) == pytest.approx(
        HAND_CTR_LOSS + 0.5 * dr + imputation + 0.5 * float(escm2["ctcvr_loss"]), rel=1e-5
    )


def test_imputation_head_is_unbounded_above():
    model = small_model("multi_dr")
    head = model.get_layer("imputation_head")
    kernel, _ = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.array([5.0], "float32")])
    np.testing.assert_allclose(model(tiny_features())["imputed_error"].numpy(), np.log1p(np.exp(5.0)), rtol=1e-6)


def test_dr_gradient_into_the_cvr_tower_equals_ipw():
    """Eq. 9's ê does not depend on r̂: E_DR moves the CVR tower exactly as IPW does."""
    model = small_model("multi_dr")
    ipw = losses.InversePropensityLoss(**model.options.weighting)
    cvr_variables = variables_named(model, "cvr_")
    with tf.GradientTape(persistent=True) as tape:
        predictions = model(tiny_features(), training=True)
        terms = model.objective(HAND_LABELS, predictions)
        error = losses.binary_crossentropy(HAND_LABELS["conversion"], predictions["cvr"])
        ipw_loss = ipw(HAND_LABELS["click"], predictions["propensity"], error)
    for dr_gradient, ipw_gradient in zip(
        tape.gradient(terms["cvr_loss"], cvr_variables), tape.gradient(ipw_loss, cvr_variables)
    ):
        np.testing.assert_allclose(dr_gradient.numpy(), ipw_gradient.numpy(), rtol=1e-5, atol=1e-8)
    assert all(g is None for g in tape.gradient(terms["cvr_loss"], variables_named(model, "imputation_")))
    assert all(
        g is not None for g in tape.gradient(terms["imputation_loss"], variables_named(model, "imputation_head"))
    )


def test_undersampling_rate_validated():
    with pytest.raises(ValueError, match="`unclicked_sampling_rate` must be at least 1"):
        small_model("multi_dr", unclicked_sampling_rate=0.5)
    model = small_model("multi_dr", unclicked_sampling_rate=1.5)
    assert np.isfinite(float(model.objective(HAND_LABELS, model(tiny_features(), training=True))["loss"]))
