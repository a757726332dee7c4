import os
import subprocess
import sys

import numpy as np
import pytest

from tfcvr.data import TFRecordPipeline, load_schema, simulate


def test_deterministic_for_a_seed():
    first, again, other = simulate.simulate(2000, seed=5), simulate.simulate(2000, seed=5), simulate.simulate(2000, 6)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["click"], other["click"])


@pytest.mark.parametrize(
    ("settings", "day", "expected"),
    [
        ({}, None, (153, 35, 182, [3359514869509960571, -1762188163079273193], 153.72384084, 186.37623649)),
        (
            {"selection_strength": 2.0, "ctr_bias": -3.6, "cvr_bias": -4.6},
            2,
            (140, 39, 111, [-3919027158961225199, -777878147648983537], 137.82529942, 106.86237694),
        ),
    ],
)
def test_draws_are_pinned(settings, day, expected):
    # Values from the simulator at commit 9c1dd1e: a change of the draws' order or of the logits' arithmetic changes
    # every benchmark record, so it must be deliberate.
    log = simulate.simulate(2000, 7, simulate.SimulationConfig(**settings), day)
    clicks, conversions, potential, user_ids, ctr_total, cvr_total = expected
    assert (log["click"].sum(), log["conversion"].sum(), log["potential_conversion"].sum()) == (
        clicks,
        conversions,
        potential,
    )
    assert log["user_id"][:2].tolist() == user_ids
    np.testing.assert_allclose(log["true_ctr"].astype(np.float64).sum(), ctr_total, rtol=1e-7)
    np.testing.assert_allclose(log["true_cvr"].astype(np.float64).sum(), cvr_total, rtol=1e-7)


def test_labels_follow_the_generative_process():
    log = simulate.simulate(200_000, seed=0)
    click, conversion, potential = log["click"], log["conversion"], log["potential_conversion"]
    np.testing.assert_array_equal(conversion, click * potential)  # conversion is post-click
    assert abs(click.mean() - log["true_ctr"].mean()) < 0.003
    assert abs(potential.mean() - log["true_cvr"].mean()) < 0.003
    assert 0.05 < click.mean() < 0.12


def test_selection_bias_is_missing_not_at_random():
    """Clicked impressions convert more than unclicked ones, and the hidden intent adds to it."""
    biased = simulate.simulate(200_000, seed=0)
    clicked = biased["click"] == 1
    gap = biased["true_cvr"][clicked].mean() - biased["true_cvr"][~clicked].mean()
    assert gap > 0.10
    # Observed CVR on clicks over-states the entire-space CVR a naive model learns from.
    assert biased["conversion"][clicked].mean() > 2 * biased["true_cvr"].mean()
    # Without the hidden intent the gap shrinks: part of the bias is not explained by features.
    unbiased = simulate.simulate(200_000, seed=0, config=simulate.SimulationConfig(selection_strength=0.0))
    clicked0 = unbiased["click"] == 1
    gap0 = unbiased["true_cvr"][clicked0].mean() - unbiased["true_cvr"][~clicked0].mean()
    assert gap0 < gap - 0.03


def test_cli_writes_shards_schema_and_ground_truth(tmp_path):
    out = tmp_path / "sim"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    subprocess.run(
        [sys.executable, "-m", "tfcvr.data.simulate", f"--out={out}", "--rows=1000", "--seed=1", "--shards=2"],
        check=True,
        env=env,
        capture_output=True,
    )
    assert sorted(os.listdir(out)) == [
        "eval-00000-of-00001.tfrecord",
        "schema.json",
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
    ]
    schema = load_schema(str(out / "schema.json"))
    pipeline = TFRecordPipeline(str(out / "train-*.tfrecord"), schema, 1000, ground_truth=True)
    ((features, labels),) = list(pipeline.dataset())
    assert features["user_id"].shape == (800,)
    assert set(labels) >= {"true_ctr", "true_cvr", "potential_conversion"}


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="`num_rows` must be positive"):
        simulate.simulate(0)
    with pytest.raises(ValueError, match="`eval_fraction` must be in"):
        simulate.write_simulation(str(tmp_path), 100, eval_fraction=1.0)


def test_days_share_the_population_and_draw_fresh_impressions():
    day1, day2 = simulate.simulate(3000, seed=4, day=1), simulate.simulate(3000, seed=4, day=2)
    # The same users and items (their random 63-bit ids), seen in other impressions.
    assert set(day1["user_id"]) & set(day2["user_id"]) and set(day1["item_id"]) & set(day2["item_id"])
    assert not set(day1["user_id"]) & set(simulate.simulate(3000, seed=5, day=1)["user_id"])  # another world
    assert not np.array_equal(day1["user_id"], day2["user_id"])
    np.testing.assert_array_equal(day1["item_id"], simulate.simulate(3000, seed=4, day=1)["item_id"])
    with pytest.raises(ValueError, match="`day` must be non-negative"):
        simulate.simulate(10, day=-1)


def test_features_only_truth_without_intent_is_the_truth_itself():
    config = simulate.SimulationConfig(selection_strength=0.0)
    truth, log = simulate.features_only_truth(3000, 4, config, day=2), simulate.simulate(3000, 4, config, day=2)
    np.testing.assert_allclose(truth["ctr"], log["true_ctr"], rtol=1e-6)
    np.testing.assert_allclose(truth["cvr"], log["true_cvr"], rtol=1e-6)
    np.testing.assert_allclose(truth["ctcvr"], truth["ctr"] * truth["cvr"], rtol=1e-12)


def test_features_only_truth_integrates_the_hidden_intent_out():
    from scipy import integrate, special, stats

    config = simulate.SimulationConfig(selection_strength=1.5)
    truth = simulate.features_only_truth(2000, 1, config)
    # The feature part of each logit, by hand: the same draws without intent (the intent is drawn either way).
    without = simulate.simulate(2000, 1, simulate.SimulationConfig(selection_strength=0.0))
    click_part, conversion_part = special.logit(without["true_ctr"][:3]), special.logit(without["true_cvr"][:3])
    for row in range(3):

        def expected(f):
            return integrate.quad(lambda z: f(z) * stats.norm.pdf(z), -12, 12, epsabs=1e-12)[0]

        ctr = expected(lambda z, a=click_part[row]: special.expit(a + 1.5 * z))
        cvr = expected(lambda z, b=conversion_part[row]: special.expit(b + 1.5 * z))
        both = expected(
            lambda z, a=click_part[row], b=conversion_part[row]: special.expit(a + 1.5 * z) * special.expit(b + 1.5 * z)
        )
        np.testing.assert_allclose(
            [truth["ctr"][row], truth["cvr"][row], truth["ctcvr"][row]], [ctr, cvr, both], rtol=1e-5
        )
    # Click and conversion share the intent: every row converts-and-clicks more often than the product says.
    assert np.all(truth["ctcvr"] > truth["ctr"] * truth["cvr"])
    # The realised truth of the same impressions (its own intent per row) averages to these, row for row.
    log = simulate.simulate(2000, 1, config)
    for name, column in (("ctr", "true_ctr"), ("cvr", "true_cvr")):
        difference = log[column] - truth[name]
        assert abs(difference.mean()) < 4 * difference.std() / np.sqrt(2000)
    with pytest.raises(ValueError, match="quadrature_points"):
        simulate.features_only_truth(10, quadrature_points=0)
