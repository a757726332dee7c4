import math

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import HAND_CTR_LOSS, HAND_CVR, HAND_CVR_ERRORS, HAND_LABELS, hand_predictions, small_model

# The official code's recipe: entropy weight 1, both terms divided by the batch size, λ from the batch's losses.
CODE = {"entropy_loss_weight": 1.0, "reduction": "batch", "loss_ratio_momentum": 0.0}


def entropy(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


CVR_LOSS = (HAND_CVR_ERRORS[0] + HAND_CVR_ERRORS[1] + entropy(HAND_CVR[2]) + entropy(HAND_CVR[3])) / 4


def test_objective_and_dynamic_weight_by_hand():
    terms = {k: float(v) for k, v in small_model("nise", **CODE).objective(HAND_LABELS, hand_predictions()).items()}
    weight = min(HAND_CTR_LOSS / CVR_LOSS, 50.0)
    assert terms["cvr_loss"] == pytest.approx(CVR_LOSS, rel=1e-5)
    assert terms["cvr_loss_weight"] == pytest.approx(weight, rel=1e-5)
    assert terms["loss"] == pytest.approx(HAND_CTR_LOSS + weight * CVR_LOSS, rel=1e-5)
    capped = small_model("nise", max_weight_ratio=0.1, **CODE).objective(HAND_LABELS, hand_predictions())
    assert float(capped["cvr_loss_weight"]) == pytest.approx(0.1)


def test_unclicked_term_is_entropy_minimisation():
    cvr = tf.Variable(HAND_CVR)
    model = small_model("nise", dynamic_weight=False, **CODE)
    with tf.GradientTape() as tape:
        loss = model.objective(HAND_LABELS, {**hand_predictions(), "cvr": cvr})["cvr_loss"]
    gradient = tape.gradient(loss, cvr).numpy()
    p = np.array(HAND_CVR)
    # dH/dp = log((1 - p) / p) on unclicked rows, divided by |D| = 4.
    np.testing.assert_allclose(gradient[2:], np.log((1 - p[2:]) / p[2:]) / 4, rtol=1e-4)


def test_ablations():
    no_unclicked = small_model("nise", use_unclicked=False, **CODE).objective(HAND_LABELS, hand_predictions())
    assert float(no_unclicked["cvr_loss"]) == pytest.approx((HAND_CVR_ERRORS[0] + HAND_CVR_ERRORS[1]) / 4, rel=1e-5)
    fixed = small_model("nise", dynamic_weight=False, **CODE).objective(HAND_LABELS, hand_predictions())
    assert float(fixed["loss"]) == pytest.approx(HAND_CTR_LOSS + CVR_LOSS, rel=1e-5)
    cvr_only = small_model("nise", use_ctr_loss=False, **CODE).objective(HAND_LABELS, hand_predictions())
    assert float(cvr_only["loss"]) == pytest.approx(float(cvr_only["cvr_loss_weight"]) * CVR_LOSS, rel=1e-5)


def test_default_reduction_means_each_population_with_a_small_entropy_loss_weight():
    terms = small_model("nise").objective(HAND_LABELS, hand_predictions())
    expected = (HAND_CVR_ERRORS[0] + HAND_CVR_ERRORS[1]) / 2 + 0.05 * (entropy(HAND_CVR[2]) + entropy(HAND_CVR[3])) / 2
    assert float(terms["cvr_loss"]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="`reduction`"):
        small_model("nise", reduction="mean")
    with pytest.raises(ValueError, match="`entropy_loss_weight`"):
        small_model("nise", entropy_loss_weight=-1.0)


def test_dynamic_weight_divides_running_means_of_the_losses():
    model = small_model("nise", loss_ratio_momentum=0.5)
    no_conversion = {**HAND_LABELS, "conversion": tf.zeros_like(HAND_LABELS["conversion"])}
    batches = [(HAND_LABELS, hand_predictions()), (no_conversion, hand_predictions())]
    averages = np.zeros(2)
    for labels, predictions in batches:
        terms = model.objective(labels, predictions)
        batch = np.array([float(terms["ctr_loss"]), float(terms["cvr_loss"])])
        averages = 0.5 * averages + 0.5 * batch
        # λ is the ratio of the running means, not of this batch's losses (the second batch's L_CVR is smaller).
        assert float(terms["cvr_loss_weight"]) == pytest.approx(averages[0] / averages[1], rel=1e-5)
    assert averages[0] / averages[1] != pytest.approx(batch[0] / batch[1], rel=1e-3)
    np.testing.assert_allclose(model.loss_averages.numpy(), averages, rtol=1e-5)
    with pytest.raises(ValueError, match="`loss_ratio_momentum`"):
        small_model("nise", loss_ratio_momentum=1.0)


def test_running_means_survive_a_save_and_reload(tmp_path):
    import keras

    model = small_model("nise")
    model.objective(HAND_LABELS, hand_predictions())
    path = str(tmp_path / "nise.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.loss_averages.numpy(), model.loss_averages.numpy())
