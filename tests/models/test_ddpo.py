import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import (
    HAND_CTR,
    HAND_CVR,
    HAND_LABELS,
    hand_predictions,
    small_model,
    tiny_features,
    variables_named,
)

CONVERSION_PROPENSITY = [0.7, 0.4, 0.3, 0.2]


def bce(target, p):
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def _predictions():
    return hand_predictions(conversion_propensity=CONVERSION_PROPENSITY)


def test_soft_labels_and_self_normalised_dual_weights_by_hand():
    model = small_model("ddpo", use_soft_labels=True)
    terms = {k: float(v) for k, v in model.objective(HAND_LABELS, _predictions()).items()}
    # Eq. 9: converted rows keep 1, every other row takes r^c.
    soft = np.array([1.0, 0.4, 0.3, 0.2])
    error = bce(soft, np.array(HAND_CVR))
    ctr = np.array(HAND_CTR)
    clicked_weights = (1 / ctr[:2]) / np.sum(1 / ctr[:2])  # Eq. 15, clicked rows
    unclicked_weights = (1 / (1 - ctr[2:])) / np.sum(1 / (1 - ctr[2:]))  # Eq. 15, unclicked rows
    cvr_loss = np.sum(clicked_weights * error[:2]) + np.sum(unclicked_weights * error[2:])
    assert terms["cvr_loss"] == pytest.approx(cvr_loss, rel=1e-5)
    # Eq. 6: clicked rows only, divided by |D|.
    assert terms["conversion_propensity_loss"] == pytest.approx((bce(1, 0.7) + bce(0, 0.4)) / 4, rel=1e-5)
    per_batch = small_model("ddpo", use_soft_labels=True, cvr_loss_scale="per_batch").objective(
        HAND_LABELS, _predictions()
    )
    assert float(per_batch["cvr_loss"]) == pytest.approx(cvr_loss / 4, rel=1e-5)


def test_without_dynamic_soft_labels_clicked_rows_keep_their_label():
    model = small_model("ddpo", use_soft_labels=False)
    labels = model.soft_labels(
        HAND_LABELS["click"], tf.cast(HAND_LABELS["conversion"], tf.float32), tf.constant(CONVERSION_PROPENSITY)
    )
    np.testing.assert_allclose(labels.numpy(), [1.0, 0.0, 0.3, 0.2])


def test_conversion_propensity_learns_from_clicked_rows_only():
    model = small_model("ddpo")
    unclicked = {"click": tf.zeros([4], tf.int64), "conversion": tf.zeros([4], tf.int64)}
    with tf.GradientTape() as tape:
        terms = model.objective(unclicked, model(tiny_features(), training=True))
    for gradient in tape.gradient(
        terms["conversion_propensity_loss"], variables_named(model, "conversion_propensity_head")
    ):
        np.testing.assert_array_equal(gradient.numpy(), 0.0)
    # Pseudo-labels are constants: the CVR loss does not train the conversion-propensity head.
    with tf.GradientTape() as tape:
        terms = model.objective(HAND_LABELS, model(tiny_features(), training=True))
    assert all(
        g is None for g in tape.gradient(terms["cvr_loss"], variables_named(model, "conversion_propensity_head"))
    )


def test_ablations_change_the_graph():
    full = small_model("ddpo")
    assert variables_named(full, "click_transfer") and variables_named(full, "conversion_transfer")
    assert not variables_named(small_model("ddpo", use_causal_transfer=False), "transfer")
    no_convn = small_model("ddpo", use_conversion_propensity=False)
    assert "conversion_propensity" not in no_convn.output and not variables_named(no_convn, "conversion_transfer")
    terms = no_convn.objective(HAND_LABELS, hand_predictions())
    assert "conversion_propensity_loss" not in terms and np.isfinite(float(terms["loss"]))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="`cvr_loss_scale` must be one of"):
        small_model("ddpo", cvr_loss_scale="sum")
    with pytest.raises(
        ValueError, match="mmoe_ddpo is ddpo with backbone='mmoe'; for backbone='shared_bottom' use model 'ddpo'"
    ):
        small_model("mmoe_ddpo", backbone="shared_bottom")
    with pytest.raises(ValueError, match="must be 'shared'"):
        small_model("ddpo", propensity="separate")
    assert small_model("mmoe_ddpo").get_config()["backbone"] == "mmoe"
