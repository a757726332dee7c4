"""Every registered method on every backbone and with every feature interaction: fits, exports, reloads from a
.keras file, and the export and the reloaded model score as the trained one."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, tiny_row
from tfcvr import export, models
from tfcvr.data import example_writer, transform
from tfcvr.data import schema as schema_lib
from tfcvr.layers import BACKBONES, INTERACTIONS

# End-to-end: an export and a .keras round trip per case; left out of the fast tier.
pytestmark = pytest.mark.slow

SCHEMA = schema_lib.Schema.from_dict(TINY_SCHEMA)


def _pairwise_cases() -> list:
    """Every (method, backbone), (method, interaction) and (backbone, interaction) pair at least once.

    The interaction feeds the backbone and a method reads the backbone's outputs, so a fault needs two of the
    three to meet; all pairs take 3 cases per method where all triples took 9 (a quarter of the suite's time).
    Method i's j-th case pairs its j-th backbone with interaction i + j (a Latin square across methods).
    """
    cases = []
    for i, name in enumerate(models.names()):
        backbones = models.get(name).backbones
        for j in range(max(len(backbones), len(INTERACTIONS))):
            cases.append((name, backbones[j % len(backbones)], INTERACTIONS[(i + j) % len(INTERACTIONS)]))
    return cases


CASES = _pairwise_cases()


def test_the_cases_cover_every_pair():
    names = models.names()
    assert {(n, b) for n, b, _ in CASES} == {(n, b) for n in names for b in models.get(n).backbones}
    assert {(n, i) for n, _, i in CASES} == {(n, i) for n in names for i in INTERACTIONS}
    assert {(b, i) for _, b, i in CASES} == {(b, i) for b in BACKBONES for i in INTERACTIONS}


def _dataset():
    rng = np.random.default_rng(0)
    rows = [
        tiny_row(
            user_id=int(rng.integers(0, 50)),
            item_cat=f"c{rng.integers(0, 20)}",
            price=float(rng.normal()),
            click=int(click),
            conversion=int(click and rng.uniform() < 0.5),
        )
        for click in rng.uniform(size=64) < 0.4
    ]
    return [example_writer.to_example(row).SerializeToString() for row in rows]


# Full-rank cross layers (the default) in the sweep; the low-rank ones once more, end to end.
@pytest.mark.parametrize(
    "name, backbone, interaction, cross_rank",
    [(*case, None) for case in CASES] + [("escm2_ipw", "ple", "cross", 3)],
    ids=["-".join(case) for case in CASES] + ["escm2_ipw-ple-cross-rank3"],
)
def test_fits_exports_reloads_and_scores_the_same(name, backbone, interaction, cross_rank, tmp_path):
    keras.utils.set_random_seed(0)
    model = models.build(
        name,
        SCHEMA,
        backbone=backbone,
        interaction=interaction,
        hidden_units=(8,),
        tower_units=(4, 2),
        cross_rank=cross_rank,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    records = tf.constant(_dataset())
    raw = tf.io.parse_example(records, {**transform.feature_spec(SCHEMA), **transform.label_spec(SCHEMA, False)})
    features = transform.to_model_inputs(raw, SCHEMA)
    labels = {"click": raw["click"], "conversion": raw["conversion"]}
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.fit(tf.data.Dataset.from_tensor_slices((features, labels)).batch(32), epochs=1, verbose=0)
    assert any(not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
    expected = model(features, training=False)

    served = tf.saved_model.load(export.export_for_serving(model, SCHEMA, str(tmp_path / "export")))
    scores = served.signatures["serving_default"](examples=records)
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert reloaded.get_config() == model.get_config()
    again = reloaded(features, training=False)
    for key in ("ctr", "cvr", "ctcvr"):
        np.testing.assert_allclose(scores[key].numpy(), expected[key].numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(again[key].numpy(), expected[key].numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
