import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, small_model, tiny_row, write_rows
from tfcvr import export, metrics, models
from tfcvr.data import TFRecordPipeline, example_writer
from tfcvr.data import schema as schema_lib
from tfcvr.models import intercepts


def test_solve_matches_the_closed_form_of_constant_predictions():
    # pCTR 0.1 everywhere, 20% clicked: a = logit(0.2) - logit(0.1). Then Σ 0.2·σ(logit 0.5 + b) = 4 conversions
    # over 100 impressions: σ(b) = 0.2, b = logit(0.2).
    predictions = {"ctr": np.full(100, 0.1, np.float32), "cvr": np.full(100, 0.5, np.float32)}
    click = np.array([1] * 20 + [0] * 80)
    conversion = np.array([1] * 4 + [0] * 96)
    labels = {"click": click, "conversion": conversion}
    a, b, counts = intercepts.solve_offsets(predictions, labels, "ctcvr")
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    assert a == pytest.approx(logit(0.2) - logit(0.1), abs=1e-7)
    assert b == pytest.approx(logit(0.2), abs=1e-7)
    assert counts == {"examples": 100, "clicks": 20, "conversions": 4}
    # target "ctr": the same a, and pCVR left as trained.
    assert intercepts.solve_offsets(predictions, labels, "ctr")[:2] == (pytest.approx(a, abs=1e-12), 0.0)


def test_conversions_without_a_click_do_not_count():
    predictions = {"ctr": np.full(4, 0.5, np.float32), "cvr": np.full(4, 0.5, np.float32)}
    _, _, counts = intercepts.solve_offsets(
        predictions, {"click": np.array([1, 1, 0, 0]), "conversion": np.array([1, 0, 1, 0])}, "ctcvr"
    )
    assert counts["conversions"] == 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("intercepts")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(600):
        click = int(rng.random() < 0.3)
        rows.append(
            tiny_row(
                user_id=i % 40,
                item_cat=f"c{i % 7}",
                price=float(i % 5),
                click=click,
                conversion=int(click and rng.random() < 0.4),
            )
        )
    path = write_rows(folder / "train.tfrecord", rows)
    schema = schema_lib.Schema.from_dict(TINY_SCHEMA)
    keras.utils.set_random_seed(0)
    model = small_model("escm2_ipw")
    for batch in TFRecordPipeline(path, schema, 64, shuffle=True, seed=0).dataset():
        model.train_step(batch)
    return model, schema, path, rows, folder


def test_refit_matches_the_label_counts_and_replaces_earlier_offsets(trained):
    model, schema, path, rows, _ = trained
    data = TFRecordPipeline(path, schema, 64).dataset()
    features = next(iter(data))[0]
    as_trained = model(features, training=True)
    heads = model(features)
    clicks = sum(r["click"] for r in rows)
    conversions = sum(r["click"] * r["conversion"] for r in rows)
    # The default, target "ctr": Σ pCTR = clicks, pCVR served as trained.
    fit = models.refit_intercepts(model, data)
    assert (fit["examples"], fit["clicks"], fit["conversions"]) == (600, clicks, conversions)
    assert intercepts.served_offsets(model) == pytest.approx((fit["ctr_offset"], 0.0))
    served, _ = metrics.collect_predictions(model, data)
    assert served["ctr"].sum() == pytest.approx(clicks, rel=1e-4)
    np.testing.assert_array_equal(model(features)["cvr"], heads["cvr"])
    # "ctcvr": Σ pCTR·pCVR = conversions too.
    fit = models.refit_intercepts(model, data, target="ctcvr")
    assert (fit["ctr_offset"], fit["cvr_offset"]) == pytest.approx(intercepts.served_offsets(model))
    served, _ = metrics.collect_predictions(model, data)
    assert served["ctr"].sum() == pytest.approx(clicks, rel=1e-4)
    assert served["ctcvr"].sum() == pytest.approx(conversions, rel=1e-4)
    np.testing.assert_allclose(served["ctcvr"], served["ctr"] * served["cvr"], rtol=1e-6)
    # The objective's view is untouched.
    for key in ("ctr", "cvr", "ctcvr"):
        np.testing.assert_array_equal(model(features, training=True)[key], as_trained[key])
    # Solved from the heads, not from the served outputs: a second refit finds the same offsets.
    again = models.refit_intercepts(model, data, target="ctcvr")
    assert (again["ctr_offset"], again["cvr_offset"]) == pytest.approx((fit["ctr_offset"], fit["cvr_offset"]))
    with pytest.raises(ValueError, match=r"`target` must be one of \['ctr', 'ctcvr'\]. Received: 'cvr'"):
        models.refit_intercepts(model, data, target="cvr")


def test_shifted_numpy_predictions_are_what_the_model_serves(trained):
    # The sweep scores its refit variants from one pass of unshifted predictions: the NumPy shift must equal the
    # model's own served outputs with those offsets.
    model, schema, path, _, _ = trained
    data = TFRecordPipeline(path, schema, 64).dataset()
    with intercepts.offsets_restored(model, zero=True):
        raw, _ = metrics.collect_predictions(model, data)
        assert intercepts.shifted(raw, 0.0, 0.0) == raw
    with intercepts.offsets_restored(model):
        layer = model.get_layer("intercept_calibration")
        layer.ctr_offset.assign(0.7)
        layer.cvr_offset.assign(-1.3)
        assert intercepts.served_offsets(model) == pytest.approx((0.7, -1.3))
        served, _ = metrics.collect_predictions(model, data)
    shifted = intercepts.shifted(raw, 0.7, -1.3)
    for key in ("ctr", "cvr", "ctcvr"):
        np.testing.assert_allclose(shifted[key], served[key], rtol=2e-6)
    np.testing.assert_array_equal(shifted["propensity"], raw["propensity"])  # not a served probability: unshifted
    assert float(shifted["ctr"].mean()) > float(raw["ctr"].mean())


def test_undetermined_offsets_raise_and_leave_the_model_as_it_was(trained):
    model, schema, _, _, folder = trained
    model.get_layer("intercept_calibration").ctr_offset.assign(0.5)
    before = intercepts.served_offsets(model)
    no_conversion = write_rows(folder / "none.tfrecord", [tiny_row(click=i % 2, conversion=0) for i in range(8)])
    with pytest.raises(ValueError, match=r"8 impressions, 4 clicks and 0 conversions.*--refit_intercepts=none"):
        models.refit_intercepts(model, TFRecordPipeline(no_conversion, schema, 4).dataset(), target="ctcvr")
    assert intercepts.served_offsets(model) == before
    no_click = write_rows(folder / "noclick.tfrecord", [tiny_row(click=0, conversion=0) for _ in range(8)])
    with pytest.raises(
        intercepts.RefitError, match=r"ctr intercepts needs impressions with and without clicks; .* 0 clicks"
    ):
        models.refit_intercepts(model, TFRecordPipeline(no_click, schema, 4).dataset())
    assert intercepts.served_offsets(model) == before
    # What trainer.task and the leaderboard call: the run goes on, serving its heads as trained, and says why.
    skipped = intercepts.refit_or_skip(model, TFRecordPipeline(no_click, schema, 4).dataset(), "ctr")
    assert set(skipped) == {"skipped"} and "0 clicks" in skipped["skipped"]
    assert intercepts.served_offsets(model) == before


def test_the_export_and_a_saved_model_serve_the_refitted_outputs(trained):
    model, schema, path, rows, folder = trained
    data = TFRecordPipeline(path, schema, 64).dataset()
    models.refit_intercepts(model, data, target="ctcvr")
    assert all(abs(offset) > 1e-4 for offset in intercepts.served_offsets(model))  # a refit that moved both
    features = next(iter(data))[0]
    expected = model(features)
    exported = export.export_for_serving(model, schema, str(folder / "export"), version=1)
    served = tf.saved_model.load(exported).signatures["serving_default"](
        examples=tf.constant([example_writer.to_example(r).SerializeToString() for r in rows[:64]])
    )
    for key in ("ctr", "cvr", "ctcvr"):
        np.testing.assert_allclose(served[key].numpy(), expected[key].numpy(), rtol=1e-5)
    model.save(os.path.join(folder, "model.keras"))
    loaded = keras.models.load_model(os.path.join(folder, "model.keras"))
    assert intercepts.served_offsets(loaded) == pytest.approx(intercepts.served_offsets(model))
    np.testing.assert_allclose(loaded(features)["ctcvr"].numpy(), expected["ctcvr"].numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["escm2_ipw", "dr_jl", "ukd"])
def test_training_steps_never_see_the_offsets(name, trained):
    _, schema, path, _, _ = trained
    batch = next(iter(TFRecordPipeline(path, schema, 64).dataset()))
    updated = []
    for ctr_offset, cvr_offset in ((0.0, 0.0), (1.5, -2.0)):
        keras.utils.set_random_seed(3)
        model = small_model(name)
        model.get_layer("intercept_calibration").ctr_offset.assign(ctr_offset)
        model.get_layer("intercept_calibration").cvr_offset.assign(cvr_offset)
        for stage in [stage for stage, _ in model.training_stages(1)]:
            model.stage_step(stage)(batch)
        updated.append({p: v.numpy() for p, v in model.weights_by_path().items() if "intercept" not in p})
    for weight_path, value in updated[0].items():
        np.testing.assert_array_equal(value, updated[1][weight_path], err_msg=weight_path)
    keras.utils.set_random_seed(3)
    initial = small_model(name).weights_by_path()
    assert any(not np.array_equal(initial[p].numpy(), value) for p, value in updated[0].items())  # steps did train
