"""The Apache Beam runner writes exactly the files of the in-process runner, and counts what it drops.

Inputs are cut into chunks of a few KB so every pipeline has many chunks (and
joined keys that straddle chunk boundaries); outputs are compared byte for
byte: every shard of every split, schema.json, and the report up to its
timings.
"""

import json
import random

import pytest

pytest.importorskip("apache_beam")

from tests.data.convert.conftest import item_row, user_row  # noqa: E402
from tfcvr.data.convert import cli  # noqa: E402

# End-to-end: subprocesses, clusters or training to a bar; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow

F, V, E = "\x01", "\x02", "\x03"
# Many small chunks; a multi-worker DirectRunner (as the default) on the joined layouts.
COMMON_FLAGS = ["--num_shards=3", "--valid_fraction=0.2", "--split_seed=5", "--chunk_mb=0.004", "--quiet"]
MULTI_PROCESS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
IN_MEMORY = ["--direct_running_mode=in_memory"]


def _raw_aliccp(folder, rows=400, users=23, seed=0):
    """A raw Ali-CCP pair: skeleton grouped by user key (as released), one malformed line, one missing key."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    common_lines = []
    for user in range(users):
        entries = [f"101{V}{user}{E}1.0", f"121{V}{rng.randrange(9)}{E}1.0"]
        entries += [f"109_14{V}{rng.randrange(50)}{E}{rng.randrange(1, 9)}.0" for _ in range(rng.randrange(1, 6))]
        common_lines.append(f"u{user},{len(entries)},{F.join(entries)}")
    skeleton_lines = []
    for sample in range(1, rows + 1):
        user = (sample - 1) * users // rows
        entries = [f"205{V}{rng.randrange(300)}{E}1.0"]
        entries += [f"210{V}{rng.randrange(40)}{E}1.0" for _ in range(rng.randrange(0, 4))]
        entries += [f"508{V}{rng.randrange(7)}{E}{rng.random():.3f}" for _ in range(rng.randrange(0, 2))]
        click = int(rng.random() < 0.3)
        conversion = int(click and rng.random() < 0.3) or int(rng.random() < 0.01)
        skeleton_lines.append(f"{sample},{click},{conversion},u{user},{len(entries)},{F.join(entries)}")
    skeleton_lines[57] = "58,1,0,u2"  # malformed: 4 fields
    skeleton_lines[200] = skeleton_lines[200].replace(",u", ",missing", 1)
    skeleton = folder / "sample_skeleton_train.csv"
    common = folder / "common_features_train.csv"
    skeleton.write_text("\n".join(skeleton_lines) + "\n")
    common.write_text("\n".join(common_lines) + "\n")
    return ["aliccp", f"--skeleton={skeleton}", f"--common={common}", "--max_errors=5"]


def _raw_aliexpress(folder):
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    user, item = folder / "nl_user_train.csv", folder / "nl_item_train.csv"
    user.write_text("\n".join(",".join(user_row(s)) for s in range(43)) + "\n")
    items = [item_row(s // 4, rng.choice([0, 0, 1, 2])) for s in range(170)]
    items.append(item_row(999, 1))  # no user row
    item.write_text("\n".join(",".join(r) for r in items) + "\n")
    return ["aliexpress", f"--item={item}", f"--user={user}"]


def _convert(command, out, runner_flags):
    return cli.main([*command, f"--out={out}", *COMMON_FLAGS, *runner_flags])


def _assert_same_output(in_process, beam, report_a, report_b):
    names = sorted(p.name for p in in_process.iterdir())
    assert names == sorted(p.name for p in beam.iterdir())  # no piece or work files left behind
    assert any(name.startswith("valid-") for name in names)
    for name in names:
        if name.endswith("_report.json"):
            a, b = (json.loads((folder / name).read_text()) for folder in (in_process, beam))
            for report in (a, b):
                report.pop("seconds"), report.pop("rows_per_second")
            assert a == b
        else:
            assert (in_process / name).read_bytes() == (beam / name).read_bytes(), name
    for report in (report_a, report_b):
        report.pop("seconds"), report.pop("rows_per_second")
    assert report_a == report_b


@pytest.mark.parametrize("layout", ["aliccp_raw", "aliexpress_raw"])
def test_joined_layouts_multi_process(tmp_path, layout):
    command = _raw_aliccp(tmp_path / "in") if layout == "aliccp_raw" else _raw_aliexpress(tmp_path / "in")
    report = _convert(command, tmp_path / "local", ["--runner=InProcess"])
    beam_report = _convert(command, tmp_path / "beam", MULTI_PROCESS)
    _assert_same_output(tmp_path / "local", tmp_path / "beam", report, beam_report)
    if layout == "aliccp_raw":
        assert report["dropped_by_reason"]["malformed"] == 1
        assert report["dropped_by_reason"]["missing_common_features"] == 1
        assert "sample_skeleton_train.csv:58: expected 6 comma-separated fields" in report["malformed_examples"][0]
        assert report["counts"]["common_feature_rows"] == 23
        assert set(report["vocabulary"]["numeric"]) == {f"D{f}" for f in ("109_14", "110_14", "127_14", "150_14")} | {
            f"D{f}" for f in ("508", "509", "702", "853")
        }
    else:
        assert report["dropped_by_reason"] == {"missing_user_features": 1}
        assert report["counts"]["user_rows"] == 43
    assert report["rows_read"] == sum(report["written_by_split"].values()) + sum(report["dropped_by_reason"].values())


@pytest.mark.parametrize(
    "sample, command",
    [
        ("ali-ccp/paddlerec-esmm/train/small.txt", ["aliccp", "--paddlerec_text={path}", "--max_list_length=400"]),
        ("ali-ccp/torch-rechub/ali_ccp_train_sample.csv", ["csv", "--preset=torch-rechub-aliccp", "--input={path}"]),
        ("ali-ccp/paddlerec-aitm/train/train.csv", ["csv", "--preset=paddlerec-aitm", "--input={path}"]),
        ("aliexpress/torch-rechub/aliexpress_train_sample.csv", ["aliexpress", "--input={path}"]),
    ],
)
def test_published_samples(tmp_path, shared_data, sample, command):
    path = shared_data / sample
    command = [flag.format(path=path) for flag in command]
    report = _convert(command, tmp_path / "local", ["--runner=InProcess"])
    beam_report = _convert(command, tmp_path / "beam", IN_MEMORY)
    _assert_same_output(tmp_path / "local", tmp_path / "beam", report, beam_report)
    assert report["rows_written"] > 0


def test_max_errors_is_a_total_over_chunks(tmp_path):
    """Each chunk holds one malformed line, under the limit alone; the pipeline fails on the total."""
    command = _raw_aliccp(tmp_path / "in")
    skeleton = tmp_path / "in" / "sample_skeleton_train.csv"
    lines = skeleton.read_text().splitlines()
    lines[300] = "301,1,0,u9"
    skeleton.write_text("\n".join(lines) + "\n")
    flags = [*command[:3], "--max_errors=1", "--chunk_mb=0.004"]
    with pytest.raises(SystemExit, match=r"2 malformed lines, more than --max_errors=1.*sample_skeleton_train.csv:58"):
        cli.main([*flags, f"--out={tmp_path / 'beam'}", "--quiet", *IN_MEMORY])
    assert not [p for p in (tmp_path / "beam").iterdir() if p.name.endswith(".tfrecord")]
    with pytest.raises(SystemExit, match=r"sample_skeleton_train.csv:301: expected 6 .*malformed line 2"):
        cli.main([*flags, f"--out={tmp_path / 'local'}", "--quiet", "--runner=InProcess"])


def test_duplicate_joined_key_fails_the_pipeline(tmp_path):
    command = _raw_aliccp(tmp_path / "in")
    common = tmp_path / "in" / "common_features_train.csv"
    common.write_text(common.read_text() + common.read_text().splitlines()[3] + "\n")
    with pytest.raises(SystemExit, match=r"common_features_train.csv:24: key 'u3' already appeared on line 4"):
        cli.main([*command, f"--out={tmp_path / 'beam'}", "--quiet", *IN_MEMORY])


def test_pipeline_options_need_a_beam_runner(tmp_path):
    command = _raw_aliccp(tmp_path / "in")
    with pytest.raises(SystemExit, match=r"Unknown flag\(s\) \['--project=p'\].*need a Beam --runner"):
        cli.main([*command, f"--out={tmp_path / 'o'}", "--runner=InProcess", "--project=p"])


def test_parquet_row_groups(tmp_path):
    """Two Parquet files of many row groups: chunks by row groups, rows named by row number."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(3)
    paths = []
    for part in range(2):
        n = 300
        table = pa.table(
            {
                "user_id": [rng.randrange(50) for _ in range(n)],
                "history": [[rng.randrange(9) for _ in range(rng.randrange(4))] for _ in range(n)],
                "price": [rng.random() for _ in range(n)],
                "clicked": [1] * n,
                "bought": [int(rng.random() < 0.2) for _ in range(n)],
            }
        )
        path = tmp_path / f"log-{part}.parquet"
        pq.write_table(table, path, row_group_size=40)
        paths.append(str(path))
    bad = pa.table(
        {"user_id": [1, None], "history": [[1], [2]], "price": [0.5, 0.5], "clicked": [1, 1], "bought": [0, 0]}
    )
    pq.write_table(bad, tmp_path / "log-2.parquet")
    command = [
        "csv",
        f"--input={tmp_path / 'log-*.parquet'}",
        "--label_click=clicked",
        "--label_conversion=bought",
        "--categorical=user_id",
        "--categorical_list=history",
        "--numeric=price",
        "--max_errors=1",
    ]
    # Row groups are ~1-2 KB: --chunk_mb=0.004 packs a few groups per chunk.
    report = _convert(command, tmp_path / "local", ["--runner=InProcess"])
    beam_report = _convert(command, tmp_path / "beam", MULTI_PROCESS)
    _assert_same_output(tmp_path / "local", tmp_path / "beam", report, beam_report)
    assert report["rows_read"] == 602 and report["dropped_by_reason"] == {"malformed": 1}
    assert report["malformed_examples"] == [
        f"{tmp_path / 'log-2.parquet'}: row 2: column 'user_id' must hold an integer id. Received: None"
    ]


def test_flags_are_checked_before_any_work(tmp_path):
    command = [*_raw_aliccp(tmp_path / "in"), f"--out={tmp_path / 'o'}", "--quiet"]
    # A misspelt converter flag is neither ours nor Beam's (Beam alone would only warn and drop it).
    with pytest.raises(SystemExit, match=r"Unknown flag\(s\) \['--valid_fracton=0.1'\]: neither a converter flag"):
        cli.main([*command, "--valid_fracton=0.1"])
    with pytest.raises(SystemExit, match=r"--num_buckets names \['nosuch'\], which are not categorical features"):
        cli.main([*command, "--num_buckets=nosuch=10", *IN_MEMORY])
    with pytest.raises(SystemExit, match=r"remote Beam runner's workers cannot read or write this machine's files"):
        cli.main([*command, "--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=gs://b/t"])
    with pytest.raises(SystemExit, match=r"--max_errors must be -1 \(no limit\), 0 or positive"):
        cli.main([*command, "--max_errors=-2", "--runner=inprocess"])
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
