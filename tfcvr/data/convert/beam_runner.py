"""Runs a conversion as an Apache Beam pipeline: DirectRunner on all local cores, or Dataflow.

The pipeline calls the same `ImpressionFormat` methods as `local_runner` and
writes the same files:

1. The input files are cut into chunks (`chunks.plan`); each chunk's lines are
   counted in parallel and the counts' prefix sums number every line.
2. A joined layout (Ali-CCP's common features, AliExpress's user rows) joins
   by key with a CoGroupByKey of (key, chunk that needs it) and (key, where
   the joined line is): only these references are shuffled. Each chunk of
   the joined file is then read once, each wanted line is parsed once
   (`prepare`) and its part is sent to the chunks that need it, so no process
   holds the joined file.
3. Each chunk converts with its own tallies and writes its records as piece
   files of its local shards (`sink.PieceWriters`).
4. Reports and vocabularies merge in combiners; rows written per chunk give
   the split ordinals at which each chunk starts, and each final shard is the
   concatenation of its pieces in chunk order (`sink.shard_pieces`), one
   shard per worker.
5. The merged report and vocabulary go to a pickle the launching process
   reads to write schema.json and the report, as the local runner does.

Counts also appear as Beam metrics (namespace "tfcvr.convert": rows_read,
written/<split>, dropped/<reason>). A chunk stops with an error as soon as its
own malformed rows exceed `--max_errors`; the total over all chunks is
checked before the shards are assembled.
"""

import argparse
import logging
import os
import pickle
import uuid

import apache_beam as beam
import tensorflow as tf
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from tfcvr.data.convert import chunks as chunks_lib
from tfcvr.data.convert import formats, sink
from tfcvr.data.convert.report import ConversionError, ConversionReport
from tfcvr.data.convert.vocabulary import VocabularyCounter

METRICS_NAMESPACE = "tfcvr.convert"
_SUMMARY_FILE = "summary.pickle"


def run(
    fmt: formats.ImpressionFormat,
    layout: sink.OutputLayout,
    max_errors: int,
    chunk_bytes: int,
    pipeline_args: list,
) -> tuple[ConversionReport, VocabularyCounter]:
    """Runs the pipeline to completion; returns the merged report and vocabulary."""
    options = pipeline_options(pipeline_args)
    local = is_direct(options)
    if not local:
        joined = [fmt.joined_file] if isinstance(fmt, formats.JoinedFormat) else []
        on_this_machine = [path for path in (layout.out_dir, *fmt.main_files, *joined) if "://" not in path]
        if on_this_machine:
            raise ConversionError(
                f"A remote Beam runner's workers cannot read or write this machine's files: {on_this_machine}; "
                "give gs:// paths for the inputs and --out."
            )
    work_dir = os.path.join(layout.out_dir, f"_convert-{uuid.uuid4().hex[:12]}")
    plan = chunks_lib.plan(fmt.main_files, chunk_bytes)
    tf.io.gfile.makedirs(work_dir)
    beam_logger = logging.getLogger("apache_beam")
    level = beam_logger.level
    if local:
        beam_logger.setLevel(logging.ERROR)  # the local job service logs every worker's start-up at WARNING
    try:
        with beam.Pipeline(options=options) as pipeline:
            _build(pipeline, fmt, layout, max_errors, chunk_bytes, plan, work_dir)
        with tf.io.gfile.GFile(os.path.join(work_dir, _SUMMARY_FILE), "rb") as f:
            return pickle.load(f)
    except Exception as e:
        raise _user_error(e) from None
    finally:
        beam_logger.setLevel(level)
        if tf.io.gfile.exists(work_dir):
            tf.io.gfile.rmtree(work_dir)


_DIRECT_RUNNERS = ("directrunner", "direct")


def is_direct(options: PipelineOptions) -> bool:
    runner = options.get_all_options().get("runner")
    return runner is None or str(runner).lower() in _DIRECT_RUNNERS


def pipeline_options(pipeline_args: list) -> PipelineOptions:
    """Beam options from the flags; the DirectRunner defaults to one worker process per local core."""
    options = PipelineOptions(pipeline_args)
    if is_direct(options):
        direct = options.view_as(DirectOptions)
        given = " ".join(pipeline_args)
        if "--direct_running_mode" not in given:
            direct.direct_running_mode = "multi_processing"
        if "--direct_num_workers" not in given:
            direct.direct_num_workers = 0  # 0: as many as the machine has cores
    return options


def unknown_options(pipeline_args: list) -> list:
    """The flags no Beam options class declares (Beam itself only warns and drops them)."""
    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    classes, pending = set(), list(PipelineOptions.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls not in classes:
            classes.add(cls)
            pending.extend(cls.__subclasses__())
    for cls in classes:
        try:
            cls._add_argparse_args(parser)  # type: ignore[arg-type]  # Beam annotates its own parser subclass; a plain one declares the same flags
        except argparse.ArgumentError:  # two classes declaring one flag: the first declaration serves
            continue
    _, unknown = parser.parse_known_args(pipeline_args)
    return unknown


def _build(pipeline, fmt, layout, max_errors, chunk_bytes, plan, work_dir) -> None:
    numbered = _numbered(pipeline, "Input", plan)
    if isinstance(fmt, formats.JoinedFormat):
        joined_plan = chunks_lib.plan([fmt.joined_file], chunk_bytes)
        joined = _numbered(pipeline, "Joined", joined_plan)
        joined_keys = joined | "JoinedKeys" >> beam.FlatMap(_keyed_lines, fmt)
        needed = numbered | "NeededKeys" >> beam.FlatMap(_needed_keys, fmt)
        wanted = (
            {"needed": needed, "rows": joined_keys}
            | "JoinByKey" >> beam.CoGroupByKey()
            | "Locate" >> beam.FlatMap(_locate, fmt)
        )
        prepared = (
            {"chunk": joined | "JoinedByIndex" >> beam.Map(lambda c: (c.index, c)), "wanted": wanted}
            | "WantedByJoinedChunk" >> beam.CoGroupByKey()
            | "Prepare" >> beam.ParDo(_Prepare(fmt)).with_outputs("tallies", main="parts")
        )
        by_chunk = (
            {"chunk": numbered | "ByIndex" >> beam.Map(lambda c: (c.index, c)), "parts": prepared.parts}
            | "PartsToChunks" >> beam.CoGroupByKey()
            | "Unpack" >> beam.Map(lambda kv: (kv[1]["chunk"][0], dict(kv[1]["parts"])))
        )
        prepare_tallies = [prepared.tallies]
    else:
        by_chunk = numbered | "NoJoin" >> beam.Map(lambda chunk: (chunk, {}))
        prepare_tallies = []
    converted = by_chunk | "Convert" >> beam.ParDo(_Convert(fmt, layout, max_errors, work_dir))
    tallies = (
        [converted | "ChunkTallies" >> beam.Map(lambda r: (r[1], r[2])), *prepare_tallies]
        | "AllTallies" >> beam.Flatten()
        | "MergeTallies" >> beam.CombineGlobally(_MergeTallies(fmt.features, max_errors))
    )
    written = converted | "Written" >> beam.Map(lambda r: r[0]) | "WrittenByChunk" >> beam.combiners.ToDict()
    report = tallies | "Report" >> beam.Map(lambda t: t[0])  # the vocabulary's value sets stay out of the plan step
    shards = (
        pipeline
        | "Start" >> beam.Create([None])
        | "PlanShards"
        >> beam.FlatMap(
            _plan_shards, layout, work_dir, plan, beam.pvalue.AsSingleton(written), beam.pvalue.AsSingleton(report)
        )
        | "SpreadShards" >> beam.Reshuffle()
        | "Concatenate" >> beam.MapTuple(sink.concatenate)
    )
    (
        pipeline
        | "End" >> beam.Create([None])
        | "WriteSummary"
        >> beam.Map(_write_summary, work_dir, beam.pvalue.AsSingleton(tallies), beam.pvalue.AsList(shards))
    )


def _numbered(pipeline, name: str, plan: list):
    """The plan's chunks, spread over workers, with their first line numbers filled in."""
    chunks = pipeline | f"{name}Chunks" >> beam.Create(plan) | f"{name}Spread" >> beam.Reshuffle()
    counts = (
        chunks
        | f"{name}CountLines" >> beam.Map(lambda c: (c.index, c.count_lines()))
        | f"{name}Counts" >> beam.combiners.ToDict()
    )
    return chunks | f"{name}Number" >> beam.Map(_number, plan, beam.pvalue.AsSingleton(counts))


def _number(chunk, plan, counts):
    return chunks_lib.number_lines(plan, counts)[chunk.index]


def _keyed_lines(chunk, fmt):
    """(key, (joined chunk index, line)) per joined line: only references travel through the join."""
    for line, raw in chunk.lines():
        yield fmt.joined_key(raw), (chunk.index, line)


def _needed_keys(chunk, fmt):
    keys = {key for _, raw in chunk.lines() if (key := fmt.needed_key(raw)) is not None}
    return [(key, chunk.index) for key in sorted(keys)]


def _locate(element, fmt):
    """One key: unique in the joined file? Then (joined chunk, (line, key, chunks that need it))."""
    key, grouped = element
    rows = sorted(grouped["rows"])
    if len(rows) > 1:
        raise ConversionError(
            f"{fmt.joined_file}:{rows[1][1]}: key {key.decode(errors='replace')!r} already appeared on "
            f"line {rows[0][1]}; keys of a joined file must be unique."
        )
    needed = sorted(grouped["needed"])
    if rows and needed:
        chunk_index, line = rows[0]
        yield chunk_index, (line, key, needed)


class _Prepare(beam.DoFn):
    """One joined chunk: reads it once, prepares each wanted row once, sends parts to the chunks that need them.

    Tallies (the chunk's joined rows, truncated lists, vocabulary) go out as a
    tagged output per joined chunk, from `process`: outputs emitted from
    `finish_bundle` lost whole bundles under the multi-processing DirectRunner
    (Beam 2.77).
    """

    def __init__(self, fmt):
        self.fmt = fmt

    def process(self, element):
        _, grouped = element
        (chunk,) = grouped["chunk"]
        wanted = {line: (key, needed) for line, key, needed in grouped["wanted"]}
        context = formats.ChunkContext(ConversionReport(-1), VocabularyCounter(self.fmt.features))
        rows, batch = 0, []
        for line, raw in chunk.lines():
            rows += 1
            if line in wanted:
                batch.append((line, raw.rstrip(b"\r\n")))
            if len(batch) == formats.PREPARE_ROWS:
                yield from self._prepare(batch, wanted, context)
                batch = []
        yield from self._prepare(batch, wanted, context)
        context.report.count(self.fmt.joined_rows_note, rows)
        yield beam.pvalue.TaggedOutput("tallies", (context.report, context.vocabulary))

    def _prepare(self, batch: list, wanted: dict, context: formats.ChunkContext):
        if not batch:
            return
        parts = self.fmt.prepare([(f"{self.fmt.joined_file}:{line}", raw) for line, raw in batch], context)
        for (line, _), part in zip(batch, parts):
            key, needed = wanted[line]
            for chunk_index in needed:
                yield chunk_index, (key, part)


class _Convert(beam.DoFn):
    """One chunk -> piece files; emits ((index, {split: rows written}), report, vocabulary) and Beam metrics."""

    def __init__(self, fmt, layout, max_errors, work_dir):
        self.fmt, self.layout, self.max_errors, self.work_dir = fmt, layout, max_errors, work_dir

    def process(self, element):
        chunk, joined = element
        pieces = sink.PieceWriters(self.work_dir, chunk.index)
        try:
            report, vocabulary = formats.convert_chunk(
                self.fmt, chunk, joined, self.layout, pieces.target, self.max_errors
            )
        finally:
            pieces.close()
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, "rows_read").inc(report.rows_read)
        for split, count in report.written.items():
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"written/{split}").inc(count)
        for reason, count in report.dropped.items():
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"dropped/{reason}").inc(count)
        yield (chunk.index, dict(report.written)), report, vocabulary


class _MergeTallies(beam.CombineFn):
    """(report, vocabulary) pairs -> one merged pair."""

    def __init__(self, features, max_errors):
        self.features, self.max_errors = features, max_errors

    def create_accumulator(self):
        return ConversionReport(-1), VocabularyCounter(self.features)

    def add_input(self, accumulator, tallies):
        return accumulator[0].merge(tallies[0]), accumulator[1].merge(tallies[1])

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for accumulator in accumulators:
            merged = self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        accumulator[0].max_errors = self.max_errors
        return accumulator


def _plan_shards(_, layout, work_dir, plan, written, report):
    """[(shard path, pieces)] once every chunk is converted; fails here if --max_errors was exceeded in total."""
    report.check_max_errors()
    # A chunk missing here would silently shift every later row's shard: check before assembling anything.
    missing = sorted({chunk.index for chunk in plan} - set(written))
    totals = {split: sum(w.get(split, 0) for w in written.values()) for split in layout.splits}
    if missing or any(totals[split] != report.written.get(split, 0) for split in layout.splits):
        raise RuntimeError(f"Chunks {missing[:10]} reported nothing, or counts disagree: {totals} vs {report.written}")
    return sink.shard_pieces(layout, work_dir, written)


def _write_summary(_, work_dir, tallies, shards):
    with tf.io.gfile.GFile(os.path.join(work_dir, _SUMMARY_FILE), "wb") as f:
        pickle.dump(tallies, f)
    return len(shards)


def _user_error(error: Exception) -> Exception:
    """The ConversionError inside a failed pipeline (runners wrap worker errors), else the error itself."""
    text = str(error)
    marker = "ConversionError: "
    if isinstance(error, ConversionError) or marker not in text:
        return error
    return ConversionError(text[text.rindex(marker) + len(marker) :].strip().splitlines()[0])
