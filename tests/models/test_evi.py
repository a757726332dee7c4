import keras
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

TEACHER_CVR = [0.2, 0.1, 0.3, 0.05]
VIE = [2.0, 1.0, 3.0, 4.0]


def bce(target, p):
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def _model(**kwargs):
    keras.utils.set_random_seed(0)
    return small_model("evi", hidden_units=(32,), tower_units=(16, 8), **kwargs)


def test_objective_by_hand():
    model = _model()
    predictions = hand_predictions(teacher_cvr=TEACHER_CVR, variational_information=VIE)
    terms = {k: float(v) for k, v in model.objective(HAND_LABELS, predictions).items()}
    ctr, cvr, conversion = np.array(HAND_CTR), np.array(HAND_CVR), np.array([1, 0, 0, 0])
    ctr_loss = np.mean(bce(np.array([1, 1, 0, 0]), ctr))  # Eq. 12
    teacher_loss = np.mean(bce(conversion, np.array(TEACHER_CVR))[:2])  # Eq. 14 where r is observed: clicked rows
    # Eq. 15: r on clicked rows weighted 1/ô, r* = teacher on unclicked rows weighted 1/(1 − ô), 1/(2|D|).
    cvr_loss = (bce(1, 0.6) / 0.5 + bce(0, 0.3) / 0.8 + bce(0.3, 0.9) / 0.8 + bce(0.05, 0.5) / 0.9) / 8
    ctcvr_loss = np.mean(bce(conversion, ctr * cvr))  # Eq. 13
    vie_loss = np.mean(VIE)
    assert terms["teacher_cvr_loss"] == pytest.approx(teacher_loss, rel=1e-5)
    assert terms["cvr_loss"] == pytest.approx(cvr_loss, rel=1e-5)
    assert terms["vie_loss"] == pytest.approx(vie_loss, rel=1e-6)
    expected = 0.2 * ctr_loss + 0.2 * teacher_loss + 0.5 * cvr_loss + 0.8 * vie_loss + 0.1 * ctcvr_loss  # Eq. 16
    assert terms["loss"] == pytest.approx(expected, rel=1e-5)


def test_official_teacher_learns_the_logged_conversion_on_every_row():
    model = _model(teacher_population="all")
    predictions = hand_predictions(teacher_cvr=TEACHER_CVR, variational_information=VIE)
    terms = model.objective(HAND_LABELS, predictions)
    expected = np.mean(bce(np.array([1, 0, 0, 0]), np.array(TEACHER_CVR)))  # Eq. 14, every row, r = 0 unclicked
    assert float(terms["teacher_cvr_loss"]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="`teacher_population`"):
        _model(teacher_population="clicks")


def test_propensity_is_clamped_on_both_sides():
    model = _model()
    predictions = hand_predictions(teacher_cvr=TEACHER_CVR, variational_information=VIE)
    predictions["propensity"] = tf.constant([1e-5, 0.5, 0.9999, 0.5])
    cvr_loss = float(model.objective(HAND_LABELS, predictions)["cvr_loss"])
    expected = (bce(1, 0.6) / 1e-3 + bce(0, 0.3) / 0.5 + bce(0.3, 0.9) / 1e-3 + bce(0.05, 0.5) / 0.5) / 8
    assert cvr_loss == pytest.approx(expected, rel=1e-4)


def test_teacher_input_depends_on_the_click_propensity_but_does_not_train_it():
    features = tiny_features(8)
    for conditional in (True, False):
        model = _model(conditional_teacher=conditional)
        before = model(features, training=False)["teacher_cvr"].numpy()
        bias = model.get_layer("ctr_head").bias
        bias.assign(bias + 2.0)
        after = model(features, training=False)["teacher_cvr"].numpy()
        assert (not np.allclose(before, after, atol=1e-6)) == conditional
        assert bool(variables_named(model, "propensity_projection")) == conditional
    model = _model()
    with tf.GradientTape() as tape:
        teacher_loss = model.objective(HAND_LABELS, model(tiny_features(4), training=True))["teacher_cvr_loss"]
    assert all(g is None for g in tape.gradient(teacher_loss, variables_named(model, "ctr_head")))


def test_a_wider_propensity_projection_folds_into_the_default_two():
    # The teacher's first layer on x ⊗ (ô·w + b) is ô·x·A + x·B with A = Σ_j w_j K_j, B = Σ_j b_j K_j: a width-5
    # teacher's functions are a width-2 teacher's with the projection (ô, 1) and the kernel [A; B] (rows i·P + j).
    wide, narrow = _model(propensity_projection_dim=5), _model()
    assert narrow.options.propensity_projection_dim == 2
    projection_bias = wide.get_layer("propensity_projection").bias  # starts at zero: give x·B a part to play
    projection_bias.assign(np.array([0.5, -1.0, 0.3, 0.8, -0.4], np.float32))
    wide_weights = {w.path: w.numpy() for w in wide.weights}
    w, b = wide_weights["propensity_projection/kernel"][0], wide_weights["propensity_projection/bias"]
    kernel = wide_weights["teacher_backbone/bottom/dense_0/kernel"]
    per_input = kernel.reshape(-1, 5, kernel.shape[-1])  # [x's width, P, units]
    folded = {
        "propensity_projection/kernel": np.array([[1.0, 0.0]], np.float32),
        "propensity_projection/bias": np.array([0.0, 1.0], np.float32),
        "teacher_backbone/bottom/dense_0/kernel": np.stack(
            [np.einsum("j,ijk->ik", w, per_input), np.einsum("j,ijk->ik", b, per_input)], axis=1
        ).reshape(-1, kernel.shape[-1]),
    }
    for variable in narrow.weights:
        variable.assign(folded.get(variable.path, wide_weights.get(variable.path)))
    features = tiny_features(8)
    ctr_head = wide.get_layer("ctr_head")
    ctr_head.bias.assign(ctr_head.bias + 1.5)  # ô away from its start value
    narrow.get_layer("ctr_head").bias.assign(ctr_head.bias)
    expected = wide(features, training=False)["teacher_cvr"].numpy()
    np.testing.assert_allclose(narrow(features, training=False)["teacher_cvr"].numpy(), expected, rtol=1e-5)
    assert np.ptp(expected) > 1e-3  # rows differ: the comparison is not between two constants


def test_pseudo_labels_are_constants_and_vie_trains_both_sides_unless_detached():
    features = tiny_features(4)
    model = _model()
    with tf.GradientTape(persistent=True) as tape:
        terms = model.objective(HAND_LABELS, model(features, training=True))
    assert all(g is None for g in tape.gradient(terms["cvr_loss"], variables_named(model, "teacher_cvr_tower")))
    for part in ("cvr_tower_1", "teacher_cvr_tower_1", "variational_information_0/rho"):
        assert all(g is not None for g in tape.gradient(terms["vie_loss"], variables_named(model, part))), part
    # K = 2: the last two tower layers are paired.
    assert variables_named(model, "variational_information_1") and not variables_named(
        model, "variational_information_2"
    )
    detached = _model(detach_teacher_representation=True, learn_variance=False)
    with tf.GradientTape() as tape:
        terms = detached.objective(HAND_LABELS, detached(features, training=True))
    assert all(g is None for g in tape.gradient(terms["vie_loss"], variables_named(detached, "teacher_cvr_tower")))
    assert not variables_named(detached, "rho")


def test_without_vie():
    model = _model(use_vie=False)
    assert "variational_information" not in model.output and not variables_named(model, "variational")
    terms = model.objective(HAND_LABELS, hand_predictions(teacher_cvr=TEACHER_CVR))
    assert "vie_loss" not in terms and np.isfinite(float(terms["loss"]))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="`vie_layers` must be between 1 and the 2 tower layers"):
        _model(vie_layers=3)
    with pytest.raises(ValueError, match="must be 'shared'"):
        _model(propensity="separate")
    with pytest.raises(ValueError, match="`vie_reduction` must be one of"):
        _model(vie_reduction="max")
    assert _model(vie_layers=1).get_config()["vie_layers"] == 1
