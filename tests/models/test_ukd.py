import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import HAND_CTR, HAND_CTR_LOSS, HAND_LABELS, small_model, tiny_features, variables_named
from tfcvr import losses
from tfcvr.models import ukd

LABELS = {
    "click": tf.constant([1, 1, 0, 0, 1, 0, 0, 0], tf.int64),
    "conversion": tf.constant([1, 0, 0, 0, 0, 0, 0, 0], tf.int64),
}


def bce(target, p):
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def kl(p, q):
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def _model(name="ukd", **kwargs):
    keras.utils.set_random_seed(0)
    return small_model(name, hidden_units=(32,), tower_units=(16,), **kwargs)


def _snapshot(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, variables):
    return [not np.allclose(b, v.numpy()) for b, v in zip(before, variables)]


def test_stages_are_teacher_then_student():
    model = _model(teacher_epochs=2)
    assert model.training_stages(3) == (("teacher", 2), ("student", 3))
    with pytest.raises(ValueError, match="no training stage 'train'"):
        model.stage_step("train")


def test_teacher_stage_trains_only_the_teacher():
    model = _model()
    teacher, student = model.teacher.trainable_variables, model.student_variables
    assert teacher and student and not {id(v) for v in teacher} & {id(v) for v in student}
    before_teacher, before_student = _snapshot(teacher), _snapshot(student)
    terms = model.stage_step("teacher")((tiny_features(8), LABELS))
    assert {"teacher_cvr_loss", "discriminator_loss", "loss"} <= set(terms)
    assert all(_changed(before_teacher, teacher))
    assert not any(_changed(before_student, student))


def test_student_stage_keeps_the_teacher_frozen_and_learns_from_its_pseudo_labels():
    model = _model()
    features = tiny_features(8)
    model.stage_step("teacher")((features, LABELS))
    teacher = model.teacher.trainable_variables
    second_head = variables_named(model, "cvr_second_head")
    before_teacher, before_head = _snapshot(teacher), _snapshot(second_head)
    expected = model.teacher(features, training=False)["teacher_cvr"].numpy()
    np.testing.assert_array_equal(model.pseudo_labels(features)["pseudo_label"].numpy(), expected)
    for _ in range(2):
        terms = model.stage_step("student")((features, LABELS))
    assert not any(_changed(before_teacher, teacher))
    assert len(second_head) == 2 and all(_changed(before_head, second_head))
    assert np.isfinite(float(terms["loss"]))
    # The student loss never reaches the teacher: pseudo-labels are constants.
    with tf.GradientTape() as tape:
        predictions = {**model(features, training=True), **model.pseudo_labels(features)}
        loss = model.objective(LABELS, predictions)["loss"]
    assert all(g is None for g in tape.gradient(loss, teacher))


def test_discriminator_gradient_is_reversed_into_the_teacher_representation():
    model = _model(reversal_scale=0.5)
    features, domain_sample = tiny_features(8), tf.ones([8])
    backbone = variables_named(model.teacher, "teacher_backbone")
    discriminator = variables_named(model.teacher, "click_discriminator")
    with tf.GradientTape(persistent=True) as tape:
        outputs = model.teacher(features, training=True)
        reversed_loss = model.teacher_objective(LABELS, outputs, domain_sample)["discriminator_loss"]
        # The same discriminator on the same representation, without the reversal layer.
        hidden = model.teacher.get_layer("click_discriminator_tower")(outputs["teacher_representation"])
        direct = tf.squeeze(model.teacher.get_layer("click_discriminator_head")(hidden), -1)
        direct_loss = tf.reduce_mean(losses.binary_crossentropy(LABELS["click"], direct))
    np.testing.assert_allclose(float(reversed_loss), float(direct_loss), rtol=1e-6)
    for reversed_gradient, gradient in zip(
        tape.gradient(reversed_loss, backbone), tape.gradient(direct_loss, backbone)
    ):
        assert np.abs(gradient.numpy()).max() > 0
        np.testing.assert_allclose(reversed_gradient.numpy(), -0.5 * gradient.numpy(), rtol=1e-5, atol=1e-8)
    # The discriminator itself is trained normally.
    for reversed_gradient, gradient in zip(
        tape.gradient(reversed_loss, discriminator), tape.gradient(direct_loss, discriminator)
    ):
        np.testing.assert_allclose(reversed_gradient.numpy(), gradient.numpy(), rtol=1e-5, atol=1e-8)


def test_teacher_objective_by_hand_and_one_to_one_domain_sample():
    model = _model()
    outputs = {"teacher_cvr": tf.constant([0.6, 0.3, 0.9, 0.5]), "click_discriminator": tf.constant(HAND_CTR)}
    terms = model.teacher_objective(HAND_LABELS, outputs, domain_sample=tf.constant([1.0, 1.0, 1.0, 0.0]))
    assert float(terms["teacher_cvr_loss"]) == pytest.approx((bce(1, 0.6) + bce(0, 0.3)) / 2, rel=1e-5)  # Eq. 6
    disc = (bce(1, 0.5) + bce(1, 0.8) + bce(0, 0.2)) / 3  # Eq. 7 on the sampled rows
    assert float(terms["discriminator_loss"]) == pytest.approx(disc, rel=1e-5)
    click = tf.constant([1] * 100 + [0] * 900, tf.int64)
    tf.random.set_seed(1)
    sample = np.mean([losses.undersample_unclicked(click, 2.0).numpy()[100:].sum() for _ in range(50)])
    assert sample == pytest.approx(100, rel=0.1)  # about one unclicked row per clicked row (A.1)


def test_student_objective_and_uncertainty_weights_by_hand():
    model = _model()
    first, second = np.array([0.6, 0.3, 0.9, 0.5]), np.array([0.5, 0.4, 0.7, 0.5])
    pseudo = np.array([0.1, 0.1, 0.2, 0.05])
    predictions = {
        "ctr": tf.constant(HAND_CTR),
        "cvr_first": tf.constant(first, tf.float32),
        "cvr_second": tf.constant(second, tf.float32),
        "pseudo_label": tf.constant(pseudo, tf.float32),
    }
    terms = {k: float(v) for k, v in model.objective(HAND_LABELS, predictions).items()}
    conversion, click = np.array([1, 0, 0, 0]), np.array([1, 1, 0, 0])
    weight_first = np.exp(-100 * kl(first, second))  # Eq. 12, λ = 100
    weight_second = np.exp(-100 * kl(second, first))  # symmetric term (A.1)
    assert weight_first[3] == pytest.approx(1.0) and weight_first[2] < 0.01
    assert terms["uncertainty_weight"] == pytest.approx(weight_first[2:].mean(), rel=1e-4)
    click_loss = np.sum(click * (bce(conversion, first) + bce(conversion, second))) / 4
    unclick_loss = (
        0.5 * np.sum((1 - click) * (weight_first * bce(pseudo, first) + weight_second * bce(pseudo, second))) / 4
    )
    regulariser = np.sum((1 - click) * kl(first, second)) / 4
    assert terms["cvr_click_loss"] == pytest.approx(click_loss, rel=1e-5)
    assert terms["cvr_unclick_loss"] == pytest.approx(unclick_loss, rel=1e-4)
    assert terms["uncertainty_loss"] == pytest.approx(regulariser, rel=1e-4)
    expected = click_loss + unclick_loss + regulariser + 0.2 * HAND_CTR_LOSS  # Eq. 10, γ = 0.2
    assert terms["loss"] == pytest.approx(expected, rel=1e-5)


def test_uncertainty_weight_is_differentiable_unless_detached():
    first, second = tf.Variable([0.6, 0.3, 0.9, 0.5]), tf.constant([0.5, 0.4, 0.7, 0.5])
    predictions = {"ctr": tf.constant(HAND_CTR), "cvr_second": second, "pseudo_label": tf.fill([4], 0.1)}
    gradients = {}
    for detach in (False, True):
        model = _model(detach_uncertainty_weight=detach)
        with tf.GradientTape() as tape:
            terms = model.objective(HAND_LABELS, {**predictions, "cvr_first": first})
        gradients[detach] = tape.gradient(terms["cvr_unclick_loss"], first).numpy()
    # Row 2's weight e^{−λ KL} is ~0 and flat when detached; differentiable, its KL term moves p too.
    assert gradients[False][2] != pytest.approx(gradients[True][2], rel=1e-3)
    np.testing.assert_allclose(gradients[False][:2], 0.0)


def test_serving_cvr_is_the_mean_of_the_two_predictors_without_dropout():
    model = _model()
    outputs = model(tiny_features(8), training=False)
    np.testing.assert_allclose(
        outputs["cvr"].numpy(), (outputs["cvr_first"].numpy() + outputs["cvr_second"].numpy()) / 2, rtol=1e-6
    )
    np.testing.assert_array_equal(model(tiny_features(8), training=False)["cvr"].numpy(), outputs["cvr"].numpy())


def test_base_student_objective_by_hand():
    model = _model("ukd_base")
    assert "cvr_first" not in model.output
    pseudo = np.array([0.1, 0.1, 0.2, 0.05])
    predictions = {
        "ctr": tf.constant(HAND_CTR),
        "cvr": tf.constant([0.6, 0.3, 0.9, 0.5]),
        "pseudo_label": tf.constant(pseudo, tf.float32),
    }
    terms = {k: float(v) for k, v in model.objective(HAND_LABELS, predictions).items()}
    expected = (bce(1, 0.6) + bce(0, 0.3)) / 4 + 0.5 * (bce(0.2, 0.9) + bce(0.05, 0.5)) / 4  # Eq. 9
    assert terms["loss"] == pytest.approx(expected + 0.2 * HAND_CTR_LOSS, rel=1e-5)  # Eq. 10


def test_mc_dropout_keeps_the_unclicked_rows_of_lowest_pseudo_label_variance():
    model = _model("ukd_mc_dropout", mc_keep_fraction=0.5)
    labels = {"click": tf.constant([1, 0, 0, 0, 0], tf.int64), "conversion": tf.zeros([5], tf.int64)}
    cvr, pseudo = np.array([0.3, 0.4, 0.5, 0.6, 0.7]), np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    predictions = {
        "ctr": tf.fill([5], 0.5),
        "cvr": tf.constant(cvr, tf.float32),
        "pseudo_label": tf.constant(pseudo, tf.float32),
        "pseudo_label_variance": tf.constant([9.0, 0.4, 0.1, 0.3, 0.2]),
    }
    terms = model.objective(labels, predictions)
    # Unclicked rows 1-4; the lower half of their variances: rows 2 (0.1) and 4 (0.2).
    expected = 0.5 * (bce(0.3, 0.5) + bce(0.5, 0.7)) / 5
    assert float(terms["cvr_unclick_loss"]) == pytest.approx(expected, rel=1e-5)
    # The teacher predicts with dropout on: the passes disagree.
    pseudo_labels = model.pseudo_labels(tiny_features(8))
    assert set(pseudo_labels) == {"pseudo_label", "pseudo_label_variance"}
    assert float(tf.reduce_max(pseudo_labels["pseudo_label_variance"])) > 0
    assert model.teacher.get_layer("teacher_backbone").dropout == 0.2


def test_mc_dropout_passes_run_as_batched_passes_of_independent_masks():
    features = tiny_features(8)
    # Without dropout every pass is the teacher's inference: mean = its prediction, variance 0.
    exact = _model("ukd_mc_dropout", teacher_dropout=0.0, mc_samples=4)
    labels = exact.pseudo_labels(features)
    inference = exact.teacher(features, training=False)["teacher_cvr"]
    np.testing.assert_allclose(labels["pseudo_label"].numpy(), inference.numpy(), rtol=1e-6)
    np.testing.assert_allclose(labels["pseudo_label_variance"].numpy(), 0.0, atol=1e-12)
    # The passes run through views of the teacher's own layers, not copies: a changed teacher weight is what they
    # read, and the model holds each weight once.
    bias = exact.teacher.get_layer("teacher_cvr_head").weights[-1]
    bias.assign(bias + 1.0)
    np.testing.assert_allclose(
        exact.pseudo_labels(features)["pseudo_label"].numpy(),
        exact.teacher(features, training=False)["teacher_cvr"].numpy(),
        rtol=1e-6,
    )
    assert len(exact.weights_by_path()) == len({id(w) for w in exact.weights if "seed_generator" not in w.path})
    # With dropout each of the copies draws its own mask: the batched mean and variance match those of separate
    # passes of the whole teacher (the loop this replaced) over many passes: the means within 4 standard errors
    # of their difference, the variances within 30% (their ratio's sampling sd is about 0.05 at 1000 passes).
    passes = 1000
    model = _model("ukd_mc_dropout", mc_samples=passes, teacher_dropout=0.5)
    keras.utils.set_random_seed(3)
    batched = model.pseudo_labels(features)
    looped = tf.stack([model.teacher(features, training=True)["teacher_cvr"] for _ in range(passes)]).numpy()
    standard_error = np.sqrt((batched["pseudo_label_variance"].numpy() + looped.var(0)) / passes)
    assert np.all(np.abs(batched["pseudo_label"].numpy() - looped.mean(0)) <= 4 * standard_error)
    np.testing.assert_allclose(batched["pseudo_label_variance"].numpy(), looped.var(0), rtol=0.3, atol=1e-4)
    assert batched["pseudo_label"].shape == (8,) and float(tf.reduce_min(batched["pseudo_label_variance"])) > 0
    # Two passes run as two batches of one (ukd.MC_PARALLEL_BATCHES): each draws its own masks, so they disagree.
    assert ukd._split(2, ukd.MC_PARALLEL_BATCHES) == [1, 1]
    pair = _model("ukd_mc_dropout", mc_samples=2, teacher_dropout=0.5).pseudo_labels(tiny_features(64))
    assert float(tf.reduce_mean(tf.cast(pair["pseudo_label_variance"] > 0, tf.float32))) > 0.9


def test_mc_passes_split_into_near_equal_batches():
    assert ukd._split(10, 2) == [5, 5] and ukd._split(5, 2) == [3, 2] and ukd._split(3, 4) == [1, 1, 1]


def test_mc_dropout_passes_start_at_the_backbones_first_dropout():
    # The backbone's first layer runs once per row and its first dropout makes the copies: the same samples, from the
    # same masks, as the whole backbone on the backbone input repeated per pass (5 passes: batches of 3 and 2).
    model = _model("ukd_mc_dropout", mc_samples=5, teacher_dropout=0.5)
    features = tiny_features(8)
    states = [v for v in model.teacher.variables if "seed_generator" in v.path]
    saved = [v.numpy() for v in states]
    labels = model.pseudo_labels(features)
    for variable, value in zip(states, saved):
        variable.assign(value)
    backbone_input, backbone, cvr_from_representation = model._mc_views.models
    samples = []
    for passes in (3, 2):
        repeated = tf.tile(backbone_input(features, training=True), [passes, 1])
        representation = backbone(repeated, training=True)[0]
        samples.append(tf.reshape(cvr_from_representation(representation, training=True), [passes, -1]))
    samples = tf.concat(samples, 0)
    np.testing.assert_allclose(labels["pseudo_label"], tf.reduce_mean(samples, 0), rtol=1e-5)
    np.testing.assert_allclose(labels["pseudo_label_variance"], tf.math.reduce_variance(samples, 0), rtol=1e-4)
    assert float(tf.reduce_min(labels["pseudo_label_variance"])) > 0


def test_invalid_arguments():
    with pytest.raises(ValueError, match="`uncertainty` must be one of"):
        small_model("ukd", uncertainty="ensemble")
    with pytest.raises(ValueError, match="`teacher_epochs` must be at least 1"):
        small_model("ukd", teacher_epochs=0)
    with pytest.raises(ValueError, match="`mc_samples` must be at least 2"):
        small_model("ukd", mc_samples=1)
    with pytest.raises(
        ValueError, match="ukd_base is ukd with uncertainty='none'; for uncertainty='two_predictors' use model 'ukd'"
    ):
        small_model("ukd_base", uncertainty="two_predictors")
    config = small_model("ukd_mc_dropout").get_config()
    assert config["uncertainty"] == "mc_dropout" and config["distillation_loss_weight"] == 0.5
