"""Every command line on bad input: exit status 2, one line naming what is wrong, nothing left half-written."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import TINY_SCHEMA, tiny_row, write_rows

# End-to-end: subprocesses, clusters or training to a bar; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    schema = root / "schema.json"
    schema.write_text(json.dumps(TINY_SCHEMA))
    (root / "not_a_schema.json").write_text(json.dumps({"features": "price"}))
    train = write_rows(root / "train.tfrecord", [tiny_row()] * 40)
    bad_first = write_rows(root / "bad_first.tfrecord", [tiny_row(price=None)] + [tiny_row()] * 5)
    (root / "garbage.tfrecord").write_bytes(b"not a TFRecord file " * 20)
    (root / "empty").mkdir()
    for name in ("empty-0.tfrecord", "empty-1.tfrecord"):  # a training set with zero records
        (root / "empty" / name).write_bytes(b"")
    records = pathlib.Path(train).read_bytes()
    (root / "stub.tfrecord").write_bytes(records[:7])  # fewer bytes than one record's header
    whole = 20 * (len(records) // 40)  # 20 of the 40 equal records
    (root / "cut_header.tfrecord").write_bytes(records[: whole + 3])  # then 3 bytes of the next record's header
    (root / "cut_data.tfrecord").write_bytes(records[: whole + 20])  # then a header and part of its data
    # A large shard whose record 3,000 of 4,000 has a damaged byte (its checksum no longer matches).
    large = pathlib.Path(write_rows(root / "large.tfrecord", [tiny_row()] * 4000)).read_bytes()
    damaged = bytearray(large)
    damaged[3000 * (len(large) // 4000) + 20] ^= 0xFF  # inside record 3,000's data
    (root / "corrupt_middle.tfrecord").write_bytes(bytes(damaged))
    (root / "a_file").write_text("")
    (root / "bad_config.json").write_text(json.dumps({"optimization": {"epochs": "two"}}))
    # A model_dir whose checkpoints belong to another model (recorded identity: naive).
    reused = root / "reused" / "checkpoints"
    reused.mkdir(parents=True)
    (reused / "model_identity.json").write_text(
        json.dumps(
            {"model": "naive", "config": {"backbone": "shared_bottom"}, "schema_fingerprint": "0", "tfcvr_version": "0"}
        )
    )
    (reused / "ckpt-7.index").write_text("checkpoint bytes")
    (reused / "checkpoint").write_text('model_checkpoint_path: "ckpt-7"\nall_model_checkpoint_paths: "ckpt-7"\n')
    # A leaderboard folder holding another leaderboard's results.
    (root / "board").mkdir()
    (root / "board" / "leaderboard.json").write_text(json.dumps({"setup": {"config": {"leaderboard": {"runs": 9}}}}))
    return {"root": root, "schema": str(schema), "train": str(train), "bad_first": str(bad_first)}


TASK_DATA = ["--train_files={train}", "--eval_files={train}", "--schema={schema}"]
CASES = [
    # (module, args, text the one error line must contain)
    ("trainer.task", ["--batch_size=0"], "--batch_size=0"),
    ("trainer.task", ["--epochs=-1"], "--epochs=-1"),
    ("trainer.task", ["--nosuchflag"], "nosuchflag"),
    ("trainer.task", ["chorus", "--epochs=1"], "unexpected argument(s) ['chorus']: this command takes flags only"),
    ("trainer.benchmark", ["naive,esmm"], "unexpected argument(s) ['naive,esmm']"),
    ("trainer.task", ["--model=esmmm"], "Unknown model 'esmmm'. Did you mean 'esmm'?"),
    ("trainer.task", ["--model=evi", "--model_params=use_vie=Flase"], "use_vie takes true or false"),
    ("trainer.task", ["--model=esmm", "--model_params=ctr_loss_weight=abc"], "ctr_loss_weight takes a number"),
    ("trainer.task", ["--model=evi", "--model_params=propensity=sharedx"], "propensity"),
    ("trainer.task", ["--model=esmm", "--model_params=gamma=1"], "no argument 'gamma'"),
    ("trainer.task", ["--model=ukd", "--model_params=uncertainty=ensemble"], "`uncertainty` must be one of"),
    ("trainer.task", ["--backbone=resnet"], "--backbone"),
    ("trainer.task", ["--hidden_units=32,x"], "--hidden_units"),
    ("trainer.task", ["--eval_files={train}"], "--eval_files and --schema need --train_files"),
    (
        "trainer.task",
        ["--train_files={root}/nothing*.tfrecord", "--eval_files={train}", "--schema={schema}"],
        "--train_files={root}/nothing*.tfrecord",
    ),
    (
        "trainer.task",
        ["--train_files={train}", "--eval_files={train}", "--schema={root}/missing.json"],
        "--schema={root}/missing.json: no such file",
    ),
    (
        "trainer.task",
        ["--train_files={train}", "--eval_files={train}", "--schema={root}/not_a_schema.json"],
        "--schema={root}/not_a_schema.json",
    ),
    (
        "trainer.task",
        ["--train_files={train}", "--eval_files={bad_first}", "--schema={schema}"],
        "--eval_files: record 0 of {bad_first} does not fit the schema",
    ),
    (
        "trainer.task",
        ["--train_files={root}/garbage.tfrecord", "--eval_files={train}", "--schema={schema}"],
        "{root}/garbage.tfrecord is not a readable TFRecord file",
    ),
    (
        "trainer.task",
        ["--train_files={root}/empty/*.tfrecord", "--eval_files={train}", "--schema={schema}"],
        "--train_files={root}/empty/*.tfrecord: every matched file is empty (2, 0 bytes): no records",
    ),
    (
        "trainer.task",
        ["--train_files={root}/stub.tfrecord", "--eval_files={train}", "--schema={schema}"],
        "--train_files: {root}/stub.tfrecord holds 7 bytes but no whole record: a TFRecord file cut short",
    ),
    # Found while reading, after the run's folder was set up: that folder lies outside the data folder.
    (
        "trainer.task",
        [
            "--train_files={root}/cut_header.tfrecord",
            "--eval_files={train}",
            "--schema={schema}",
            "--model_dir={root}-1",
        ],
        "TFRecord file {root}/cut_header.tfrecord is cut short: its 20 whole records end at byte",
    ),
    (
        "trainer.task",
        ["--train_files={root}/cut_data.tfrecord", "--eval_files={train}", "--schema={schema}", "--model_dir={root}-2"],
        "{root}/cut_data.tfrecord is corrupt or truncated at record 20 (the records before it read whole)",
    ),
    (
        "trainer.task",
        [
            "--train_files={root}/corrupt_middle.tfrecord",
            "--eval_files={train}",
            "--schema={schema}",
            "--model_dir={root}-3",
        ],
        "TFRecord file {root}/corrupt_middle.tfrecord is corrupt or truncated at record 3000 (the records before",
    ),
    (
        "trainer.benchmark",
        ["--train_files={train}", "--valid_files={root}/empty/*", "--eval_files={train}", "--schema={schema}"],
        "--valid_files={root}/empty/*: every matched file is empty",
    ),
    ("trainer.task", [*TASK_DATA, "--model_dir={root}/a_file"], "--model_dir={root}/a_file is a file"),
    ("trainer.task", ["--config={root}/missing.json"], "--config={root}/missing.json: no such file"),
    ("trainer.task", ["--config={root}/bad_config.json"], "OptimizationConfig.epochs: expected int"),
    ("trainer.task", [*TASK_DATA, "--model=esmm", "--model_dir={root}/reused"], "checkpoints of another model"),
    (
        "trainer.task",
        [*TASK_DATA, "--model_dir={root}/fresh", "--warm_start_from={root}/nowhere"],
        "--warm_start_from={root}/nowhere: found no checkpoint or export there",
    ),
    ("trainer.compare", ["--candidate={root}", "--eval_files={train}", "--schema={schema}"], "--baseline"),
    (
        "trainer.compare",
        ["--baseline={root}/nowhere", "--candidate={root}", "--eval_files={train}", "--schema={schema}"],
        "--baseline={root}/nowhere: {root}/nowhere is neither a SavedModel nor a folder of versions",
    ),
    ("trainer.benchmark", ["--models=naive,ukdd"], "'ukdd'"),
    ("trainer.benchmark", ["--models=ukd[alpha=1]"], "--models entry 'ukd[alpha=1]': UKD has no argument 'alpha'"),
    ("trainer.benchmark", ["--selection_metric=cvr_pcoc"], "--selection_metric"),
    ("trainer.benchmark", ["--train_files={train}"], "missing ['--valid_files', '--eval_files', '--schema']"),
    ("trainer.benchmark", ["--output_dir={root}/board"], "--output_dir={root}/board holds the results of another"),
    ("trainer.benchmark", ["--runs=0"], "--runs=0"),
    ("trainer.evaluate", ["--eval_files={train}", "--schema={schema}"], "--export_dir"),
    (
        "trainer.evaluate",
        ["--export_dir={root}", "--eval_files={train}", "--schema={schema}"],
        "is neither a SavedModel nor a folder of versions",
    ),
    ("trainer.evaluate", ["--export_dir={root}", "--eval_files={root}/none*", "--schema={schema}"], "--eval_files"),
    (
        "trainer.vertex",
        ["--project=p", "--base_output_dir=gs://b/o", "--package_uri=gs://b/t.tar.gz", "--dry_run"],
        "--package_uri needs --executor_image_uri",
    ),
    ("trainer.vertex", ["--base_output_dir=gs://b/o"], "--project"),
    ("tfcvr.data.simulate", ["--rows=abc"], "--rows=abc"),
    ("tfcvr.data.convert", ["nosuch"], "invalid choice: 'nosuch'"),
    ("tfcvr.data.convert", ["aliccp", "--out={root}/out"], "aliccp: give --skeleton and --common"),
    (
        "tfcvr.data.convert",
        ["csv", "--input={root}/missing.csv", "--out={root}/out", "--label_funnel=y", "--categorical=a"],
        "--input={root}/missing.csv",
    ),
    (
        "tfcvr.data.convert",
        ["csv", "--input={schema}", "--out={root}/out", "--label_funnel=y", "--categorical=a", "--num_buckets=a=0"],
        "--num_buckets",
    ),
    ("serving.client", ["--nosuch"], "nosuch"),
    ("serving.client", [], "--server"),
    ("serving.local", ["--model=x"], "--model: expected"),
    ("serving.local", [], "Give either --model"),
]


def _run(module, args, env=None):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd(), **(env or {})},
    )


@pytest.mark.parametrize("module, args, expected", CASES, ids=[f"{m}:{' '.join(a)}" for m, a, _ in CASES])
def test_one_line_naming_what_is_wrong(module, args, expected, data):
    fill = {k: str(v) for k, v in data.items()}
    args = [a.format(**fill) for a in args]
    before = sorted(os.listdir(data["root"]))
    checkpoint = data["root"] / "reused" / "checkpoints" / "ckpt-7.index"
    result = _run(module, args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"{module}: error: ")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr[-2000:]
    assert expected.format(**fill) in errors[0]
    assert "--helpfull" not in result.stderr and "--[no]" not in result.stderr  # no flag dump
    # Nothing half-written: no new files or folders in the data folder, the reused checkpoint untouched.
    assert sorted(os.listdir(data["root"])) == before
    assert checkpoint.read_text() == "checkpoint bytes"


def test_verbose_mode_keeps_the_traceback_for_bug_reports(data):
    result = _run("trainer.task", ["--model=esmmm"], env={"TFCVR_VERBOSE": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr and "Unknown model 'esmmm'" in result.stderr


def test_skip_corrupt_records_trains_and_compares_on_what_reads_and_reports_the_rest(data, tmp_path):
    corrupt = f"{data['root']}/corrupt_middle.tfrecord"  # record 3,000 of 4,000 damaged
    model_dir = tmp_path / "run"
    trained = _run(
        "trainer.task",
        [
            f"--train_files={corrupt}",
            f"--eval_files={corrupt}",
            f"--schema={data['schema']}",
            f"--model_dir={model_dir}",
            "--batch_size=256",
            "--skip_corrupt_records",
        ],
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert f"Skipping the unreadable rest of {corrupt} from record 3000 on (corrupted record at" in trained.stderr
    report = json.loads((model_dir / "metrics.json").read_text())
    expected = {"file": corrupt, "records_read": 3000, "first_unreadable_record": 3000, "records_lost": 1000}
    for skipped in (report["training"]["skipped_corrupt_records"], report["eval_skipped_corrupt_records"]):
        assert len(skipped) == 1 and {k: skipped[0][k] for k in expected} == expected
    assert report["metrics"]["impressions"] == 3000
    assert report["training"]["steps"] == 12  # ceil(3,000 / 256): only the readable records were trained on

    export = str(model_dir / "export")
    compare_args = [f"--baseline={export}", f"--candidate={export}", f"--schema={data['schema']}"]
    strict = _run("trainer.compare", [*compare_args, f"--eval_files={corrupt}"])
    assert strict.returncode == 2 and f"{corrupt} is corrupt or truncated at record 3000" in strict.stderr
    compared = _run(
        "trainer.compare",
        [*compare_args, f"--eval_files={corrupt}", "--skip_corrupt_records", f"--output_dir={tmp_path / 'cmp'}"],
    )
    # A decision (0 promote, 3 keep: these labels hold no conversion to compare on), not a usage error (2).
    assert compared.returncode in (0, 3) and "Decision:" in compared.stdout, compared.stderr[-3000:]
    comparison = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    (skipped,) = comparison["skipped_corrupt_records"]
    assert {k: skipped[k] for k in expected} == expected
    assert comparison["metrics"]["ctcvr_log_loss"]["records"] == 3000
