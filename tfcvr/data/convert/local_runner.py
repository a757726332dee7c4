"""Runs a conversion in this process: chunks one after the other, records straight into the final shards.

The same `ImpressionFormat` methods as the Beam pipeline (`beam_runner`) do
the work, so both give the same files; this runner needs no Apache Beam and
stops at the exact row where `--max_errors` is exceeded. A joined file is
held as a `LineIndex` of byte offsets (not parsed rows); a joined row is
prepared for each chunk that needs it (chunks next to each other share the
parts at their boundary) and its counts are taken the first time only.
"""

from tfcvr.data.convert import chunks as chunks_lib
from tfcvr.data.convert import formats, sink
from tfcvr.data.convert.line_index import LineIndex
from tfcvr.data.convert.report import MALFORMED, ConversionReport, Progress
from tfcvr.data.convert.vocabulary import VocabularyCounter


def run(
    fmt: formats.ImpressionFormat,
    layout: sink.OutputLayout,
    max_errors: int = 0,
    chunk_bytes: int = chunks_lib.DEFAULT_CHUNK_BYTES,
    verbose: bool = True,
) -> tuple[ConversionReport, VocabularyCounter]:
    """Converts every chunk of `fmt`'s files into `layout`; returns the merged report and vocabulary."""
    plan = chunks_lib.plan(fmt.main_files, chunk_bytes)
    plan = chunks_lib.number_lines(plan, {chunk.index: chunk.count_lines() for chunk in plan})
    report = ConversionReport(max_errors)
    vocabulary = VocabularyCounter(fmt.features)
    join = _LocalJoin(fmt, formats.ChunkContext(report, vocabulary)) if isinstance(fmt, formats.JoinedFormat) else None
    progress = Progress(sum(c.text_bytes for c in plan), verbose=verbose)
    writers = sink.ShardWriters(layout)
    done = 0
    try:
        for chunk in plan:
            joined = join.parts_for(chunk) if join else {}
            # This chunk's rows of a split start at the rows the chunks before it wrote there.
            offsets = {split: report.written.get(split, 0) for split in layout.splits}
            chunk_report, chunk_vocabulary = formats.convert_chunk(
                fmt,
                chunk,
                joined,
                layout,
                writers.target(offsets),
                max_errors,
                malformed_before=report.dropped.get(MALFORMED, 0),
            )
            report.merge(chunk_report)
            vocabulary.merge(chunk_vocabulary)
            done += chunk.text_bytes
            progress.update(done, report.rows_read, force=chunk is plan[-1])
    finally:
        writers.close()
        if join:
            join.close()
    return report, vocabulary


class _LocalJoin:
    """The joined rows a chunk needs, read by offset; each prepared (and counted) once."""

    def __init__(self, fmt: formats.JoinedFormat, context: formats.ChunkContext):
        self.fmt = fmt
        self.context = context
        self.index = LineIndex(fmt.joined_file, fmt.joined_key)
        context.report.count(fmt.joined_rows_note, len(self.index))
        self._previous: dict[bytes, object] = {}  # the last chunk's parts: consecutive chunks share boundary keys
        self._counted: set[bytes] = set()  # keys prepared before, whose counts must not be taken twice

    def parts_for(self, chunk: chunks_lib.Chunk) -> dict:
        keys = {key for _, raw in chunk.lines() if (key := self.fmt.needed_key(raw)) is not None}
        parts = {key: self._previous[key] for key in keys if key in self._previous}
        # (key, (location, line)) to prepare, by whether their counts are taken
        first_time: list[tuple[bytes, tuple[str, bytes]]] = []
        again: list[tuple[bytes, tuple[str, bytes]]] = []
        for key in keys - parts.keys():
            found = self.index.get(key)
            if found is None:
                continue
            line, raw = found
            (again if key in self._counted else first_time).append((key, (f"{self.fmt.joined_file}:{line}", raw)))
            self._counted.add(key)
        uncounted = formats.ChunkContext(ConversionReport(-1), VocabularyCounter(self.fmt.features))
        for rows, context in ((first_time, self.context), (again, uncounted)):
            for start in range(0, len(rows), formats.PREPARE_ROWS):
                batch = rows[start : start + formats.PREPARE_ROWS]
                parts.update(zip((key for key, _ in batch), self.fmt.prepare([row for _, row in batch], context)))
        self._previous = parts
        return parts

    def close(self) -> None:
        self.index.close()
