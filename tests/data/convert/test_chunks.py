"""Chunks own every line exactly once; per-chunk tallies merge to what one pass counts."""

import json

import numpy as np
import pytest

from tfcvr.data import schema as schema_lib
from tfcvr.data.convert import chunks, cli, sink
from tfcvr.data.convert.report import ConversionError, ConversionReport
from tfcvr.data.convert.vocabulary import VocabularyCounter


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 10, 11, 64, 1000])
def test_every_line_in_exactly_one_chunk_with_its_number(tmp_path, chunk_bytes):
    lines = [b"a,1\n", b"\n", b"bbbbbbbbbb,2\n", b"c\n", b"dd,4\r\n", b"last-without-newline"]
    path = tmp_path / "f.csv"
    path.write_bytes(b"".join(lines))
    plan = chunks.plan([str(path), str(path)], chunk_bytes)
    plan = chunks.number_lines(plan, {c.index: c.count_lines() for c in plan})
    read = [(c.file_index, line, raw) for c in plan for line, raw in c.lines()]
    expected = [(f, n, raw) for f in (0, 1) for n, raw in enumerate(lines, start=1)]
    assert read == expected
    assert [c.index for c in plan] == list(range(len(plan)))


@pytest.mark.parametrize("block_bytes", [1, 2, 3, 5, 13, 1 << 20])
def test_lines_read_by_blocks_of_any_size(tmp_path, block_bytes, monkeypatch):
    lines = [b"a,1\n", b"\n", b"bbbbbbbbbb,2\n", b"c\r\n", b"dd,4\r\n", b"last-without-newline"]
    path = tmp_path / "f.csv"
    path.write_bytes(b"".join(lines))
    defaults = chunks._lines_of_range.__defaults__
    monkeypatch.setattr(chunks._lines_of_range, "__defaults__", (block_bytes,) + defaults[1:])
    for chunk_bytes in (1, 4, 9, 100):
        plan = chunks.plan([str(path)], chunk_bytes)
        plan = chunks.number_lines(plan, {c.index: c.count_lines() for c in plan})
        assert [(line, raw) for c in plan for line, raw in c.lines()] == list(enumerate(lines, start=1))


def test_empty_file_is_one_empty_chunk(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    (chunk,) = chunks.plan([str(path)], 64)
    assert chunk.count_lines() == 0 and list(chunk.lines()) == []


def test_shard_pieces_reproduce_round_robin():
    """Chunk c's local shard l goes to shard (offset_c + l) mod n: the global k-th row lands in shard k mod n."""
    layout = sink.OutputLayout("/out", split="train", num_shards=3)
    written = {0: {"train": 4}, 1: {"train": 1}, 2: {"train": 0}, 3: {"train": 5}}
    jobs = dict(sink.shard_pieces(layout, "/w", written))
    # Rows 0-3 (chunk 0), 4 (chunk 1), 5-9 (chunk 3); row k in shard k % 3.

    def piece(chunk_index, local_shard):
        return sink.piece_path("/w", "train", chunk_index, local_shard)

    assert jobs[layout.paths("train")[0]] == [piece(0, 0), piece(3, 1)]  # rows 0, 3 | 6, 9
    assert jobs[layout.paths("train")[1]] == [piece(0, 1), piece(1, 0), piece(3, 2)]  # rows 1 | 4 | 7
    assert jobs[layout.paths("train")[2]] == [piece(0, 2), piece(3, 0)]  # rows 2 | 5, 8


def test_valid_draw_is_uniform_and_a_function_of_the_row():
    draws = np.array([sink.valid_draw(7, 0, line) for line in range(1, 20001)])
    assert 0.0 <= draws.min() and draws.max() < 1.0
    assert abs((draws < 0.1).mean() - 0.1) < 0.01 and abs(draws.mean() - 0.5) < 0.01
    assert sink.valid_draw(7, 0, 5) == sink.valid_draw(7, 0, 5) != sink.valid_draw(8, 0, 5) != sink.valid_draw(7, 1, 5)


def test_numeric_moments_merge_in_chunk_order():
    feature = schema_lib.Feature(name="x", type=schema_lib.NUMERIC, dtype="float32")
    values = np.random.default_rng(0).normal(3.0, 2.0, size=1000)
    merged = VocabularyCounter([feature])
    for index, part in reversed(list(enumerate(np.array_split(values, 7)))):  # merged out of order
        counter = VocabularyCounter([feature])
        for value in part:
            counter.observe_numbers({"x": float(value)})
        counter.finish_chunk(index)
        merged.merge(counter)
    stats = merged.numeric()["x"]
    assert stats["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert stats["variance"] == pytest.approx(values.var(), rel=1e-12)


def test_column_observers_count_like_observe_across_chunks():
    features = [
        schema_lib.Feature(name="x", type=schema_lib.NUMERIC, dtype="float32"),
        schema_lib.Feature(name="c", type=schema_lib.CATEGORICAL, dtype="int64"),
        schema_lib.Feature(name="l", type=schema_lib.CATEGORICAL_LIST, dtype="int64"),
    ]
    by_column, by_row = VocabularyCounter(features), VocabularyCounter(features)
    for chunk_index, values in enumerate(([1.0, 3.0], [5.0, 7.0, 9.0])):
        by_column.observe_numbers_column("x", np.array(values))
        by_column.observe_column("c", np.array([int(v) % 4 for v in values]))
        by_column.observe_column("l", np.array([7, 8, 9, 7]), np.array([3, 0, 1]))
        for value in values:
            by_row.observe_numbers({"x": value})
            by_row.observe("c", int(value) % 4)
        for ids in ([7, 8, 9], [], [7]):
            by_row.observe("l", ids)
        by_column.finish_chunk(chunk_index)
        by_row.finish_chunk(chunk_index)
    assert by_column.numeric()["x"] == by_row.numeric()["x"] == {"mean": 5.0, "variance": 8.0}
    assert by_column.distinct() == by_row.distinct() == {"c": 2, "l": 3}  # c: 1 and 3
    assert by_column.longest() == by_row.longest() == {"l": 3}


def test_merged_report_quotes_the_first_errors_in_input_order():
    late, early = ConversionReport(-1), ConversionReport(-1)
    for line in range(30, 55):
        late.malformed(f"f:{line}", "bad", (0, line))
    early.malformed("f:3", "bad", (0, 3))
    merged = ConversionReport(1).merge(late).merge(early)
    assert merged.dropped["malformed"] == 26
    assert merged.to_dict()["malformed_examples"][:2] == ["f:3: bad", "f:30: bad"]
    assert len(merged.to_dict()["malformed_examples"]) == 20
    with pytest.raises(ConversionError, match="26 malformed lines, more than --max_errors=1.*the first: f:3: bad"):
        merged.check_max_errors()


def test_in_process_chunks_write_the_files_of_one_pass(tmp_path, shared_data):
    """Many small chunks (records straight into shards with per-chunk offsets) == one chunk, byte for byte."""
    sample = shared_data / "aliexpress" / "torch-rechub" / "aliexpress_train_sample.csv"
    flags = ["aliexpress", f"--input={sample}", "--num_shards=3", "--valid_fraction=0.3", "--quiet"]
    flags.append("--runner=InProcess")
    one = cli.main([*flags, f"--out={tmp_path / 'one'}"])
    many = cli.main([*flags, f"--out={tmp_path / 'many'}", "--chunk_mb=0.002"])
    for name in sorted(p.name for p in (tmp_path / "one").iterdir()):
        if name.endswith(".tfrecord") or name == "schema.json":
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "many" / name).read_bytes(), name
    numeric = [report["vocabulary"].pop("numeric") for report in (one, many)]
    for report in (one, many):
        report.pop("seconds"), report.pop("rows_per_second")
    assert one == many and one["written_by_split"]["valid"] > 0
    # Moments merged over 1 or many chunks agree up to rounding (the same chunks give the same bits).
    assert len(numeric[0]) == 63 and numeric[0].keys() == numeric[1].keys()
    for name, stats in numeric[0].items():
        assert stats["mean"] == pytest.approx(numeric[1][name]["mean"], rel=1e-9, abs=1e-12)
        assert stats["variance"] == pytest.approx(numeric[1][name]["variance"], rel=1e-6, abs=1e-12)
    saved = json.loads((tmp_path / "one" / "train_report.json").read_text())["vocabulary"]["numeric"]
    assert saved == numeric[0]


@pytest.mark.parametrize("chunk_bytes", [1, 7, 50])
def test_crlf_lines_through_tf_gfile(chunk_bytes):
    """tf.io.gfile (gs://, here ram://) drops "\\r" from lines: positions must come from tell(), not lengths."""
    import tensorflow as tf

    from tfcvr.data.convert.line_index import LineIndex

    path = f"ram://crlf-{chunk_bytes}/f.csv"
    expected = [f"k{i},{'v' * i}".encode() for i in range(1, 30)]
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(b"".join(line + b"\r\n" for line in expected))
    plan = chunks.plan([path], chunk_bytes)
    plan = chunks.number_lines(plan, {c.index: c.count_lines() for c in plan})
    read = [(n, raw.rstrip(b"\r\n")) for c in plan for n, raw in c.lines()]
    assert read == list(enumerate(expected, start=1))
    index = LineIndex(path, lambda line: line.split(b",")[0])
    assert index.get(b"k17") == (17, expected[16]) and index.get(b"k1") == (1, expected[0])
    index.close()


def test_parquet_file_given_as_a_text_layout_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "skeleton.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), path)
    (chunk,) = chunks.plan([str(path)], 1 << 20)
    with pytest.raises(ValueError, match="skeleton.parquet is a Parquet file; this layout reads text lines"):
        list(chunk.lines())
