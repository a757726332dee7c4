"""Quality regression guard: no registered method collapses or miscalibrates at its defaults on a small log.

Every method trains two epochs at the library's defaults (heads starting at
the training data's base rates, the per-epoch cosine learning rate) on the
same seeded log as naive, in two worlds of the built-in simulator: its
defaults (CTR 8%; 60k rows, 45k for training) and a low-CTR one (CTR 3.8%,
CTCVR 0.4%, weaker hidden intent; 120k rows), where a run that ended on a
noisy draw of its output bias once over-predicted by half again and dr_jl
collapsed (pCTCVR 3e-15). Each method must stay near naive where a collapse
shows: oracle CVR log loss over all impressions (at most +0.15), CVR AUC on
clicked impressions (at most 0.08 below) and Σ pCVR / Σ conversions on
clicked impressions (within [0.5, 2]); and keep what a log observes
calibrated: Σ pCTR and Σ pCTCVR over all test impressions against the
simulator's expected counts (Σ true_ctr, Σ true_ctr·true_cvr: no label
draw noise) within [0.8, 1.25] and [0.6, 1.5].
The bounds catch a run-level over-prediction by half and
the collapses once seen: NISE as its code weighs its terms and
oversampling served without its prior correction. KNOWN_FAILURES lists
what still fails at the defaults (strict: a fix must remove its line).
naive_imputation is a baseline that estimates P(click and conversion), not
a CVR: it is held to the log-loss, AUC and pCTR bounds only. The sweep
over worlds, seeds, epochs and days is benchmarks/debiasing_sweep.py.
"""

import os
import tempfile

import keras
import pytest
import tensorflow as tf

from tfcvr import metrics, models, optimizers
from tfcvr.data import TFRecordPipeline, simulate, training_statistics
from tfcvr.data import schema as schema_lib
from trainer.loop import TrainingLoop
from trainer.recommendation import CALIBRATION_BAND

# End-to-end: subprocesses, clusters or training to a bar; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow

ARCHITECTURE = {"embedding_dim": 8, "hidden_units": (64,), "tower_units": (32, 16)}
# world -> (simulator settings, impressions simulated; a quarter is the test split)
WORLDS = {
    "default": (simulate.SimulationConfig(), 60_000),
    "low_ctr": (simulate.SimulationConfig(ctr_bias=-3.2, cvr_bias=-3.9, selection_strength=0.5), 120_000),
}
EPOCHS = 2
BATCH_SIZE = 256
MAX_EXTRA_ORACLE_NLL = 0.15
MAX_AUC_LOSS = 0.08
# Σ prediction / expected label count over all test impressions.
CTR_BAND = (0.8, 1.25)
CTCVR_BAND = (0.6, 1.5)
# Literal recipes known to collapse on this kind of log (see each method's docstring).
# (UKD's literal objective, detach_uncertainty_weight=False, collapsed here from heads at 1/2 under a constant
# rate (+0.27 oracle log loss, 1.8x on clicks); from the base rates with the cosine schedule it no longer does.)
COLLAPSING = {
    "nise": {"entropy_loss_weight": 1.0, "reduction": "batch", "loss_ratio_momentum": 0.0},
    "oversampling": {"correct_prediction": False},
}
# Not a CVR estimator by design (its docstring; it warns when built).
CTCVR_BASELINES = ("naive_imputation",)
# Open defects (issue 29), measured at these defaults: strict, so a fix fails the test until its line goes.
# (NISE's collapse where conversions are rare, 0.004x here, came from λ dividing the batch's own CVR loss; its
# running means, `loss_ratio_momentum`, removed it.)
KNOWN_FAILURES = {}


def _distinct_methods():
    return [name for name in models.names() if models.get(name).registered_name == name]


@pytest.fixture(scope="module", params=sorted(WORLDS))
def log(request, tmp_path_factory):
    config, rows = WORLDS[request.param]
    paths = simulate.write_simulation(
        str(tmp_path_factory.mktemp(request.param)), rows, seed=11, eval_fraction=0.25, num_shards=2, config=config
    )
    schema = schema_lib.load_schema(paths["schema"])
    return {
        **paths,
        "schema_obj": schema,
        "world": request.param,
        "steps_per_epoch": -(-(rows - rows // 4) // BATCH_SIZE),
        "training_statistics": training_statistics(
            TFRecordPipeline(paths["train"], schema, BATCH_SIZE).dataset(), schema
        ),
    }


def _train_and_score(log, name, **params):
    schema = log["schema_obj"]
    keras.utils.set_random_seed(0)
    model = models.build(name, schema, **log["training_statistics"], **ARCHITECTURE, **params)
    # The library's default optimizer and learning-rate schedule, one epoch its period.
    model.compile(optimizer=optimizers.make_optimizer("adam", 1e-3, steps_per_epoch=log["steps_per_epoch"]))
    train = TFRecordPipeline(log["train"], schema, BATCH_SIZE, shuffle=True, seed=0)
    checkpoint_dir = tempfile.mkdtemp(prefix=f"{name}-", dir=os.path.dirname(log["schema"]))
    loop = TrainingLoop(
        model,
        tf.distribute.get_strategy(),
        checkpoint_dir=checkpoint_dir,
        log_every=10**9,
        checkpoint_every=10**9,
        steps_per_execution=16,
    )
    loop.train(lambda context, epoch: train.dataset(epoch_index=epoch), epochs=EPOCHS, global_batch_size=BATCH_SIZE)
    return metrics.evaluate(model, TFRecordPipeline(log["eval"], schema, 4096, ground_truth=True).dataset())


@pytest.fixture(scope="module")
def naive(log):
    return _train_and_score(log, "naive")


def _findings(result, naive, cvr_estimator=True, calibration=True) -> list:
    """The guard's findings: empty when `result` is sound next to naive's (and, with `calibration`, calibrated)."""
    findings = []
    if not result["oracle_cvr_nll"] <= naive["oracle_cvr_nll"] + MAX_EXTRA_ORACLE_NLL:
        findings.append(f"oracle CVR log loss {result['oracle_cvr_nll']:.4f} vs naive {naive['oracle_cvr_nll']:.4f}")
    if not result["cvr_auc"] >= naive["cvr_auc"] - MAX_AUC_LOSS:
        findings.append(f"CVR AUC on clicks {result['cvr_auc']:.4f} vs naive {naive['cvr_auc']:.4f}")
    bands = {"cvr_pcoc": CALIBRATION_BAND}
    if calibration:
        bands.update(oracle_ctr_pcoc=CTR_BAND, oracle_ctcvr_pcoc=CTCVR_BAND)
    for metric, (low, high) in bands.items():
        if metric != "oracle_ctr_pcoc" and not cvr_estimator:
            continue
        if not low <= result[metric] <= high:
            findings.append(f"{metric} {result[metric]:.3f} outside [{low}, {high}]")
    return findings


@pytest.mark.parametrize("name", _distinct_methods())
def test_method_is_sound_and_calibrated_at_its_defaults(name, log, naive, request):
    known = KNOWN_FAILURES.get((name, log["world"]))
    if known:
        request.applymarker(pytest.mark.xfail(reason=known, strict=True))
    result = _train_and_score(log, name)
    findings = _findings(result, naive, cvr_estimator=name not in CTCVR_BASELINES)
    assert findings == [], f"{name} at its defaults in the {log['world']} world"


@pytest.mark.parametrize("name", sorted(COLLAPSING))
def test_guard_catches_the_literal_recipes_that_collapse(name, log, naive):
    # The collapse itself (log loss, AUC, clicked-row calibration), not the observed rates' calibration.
    assert _findings(_train_and_score(log, name, **COLLAPSING[name]), naive, calibration=False)
