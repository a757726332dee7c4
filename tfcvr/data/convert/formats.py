"""What every input layout provides to the runners: its features, its files, and how one chunk converts.

A layout is an `ImpressionFormat`: the impression files (cut into chunks,
`chunks.py`), optionally a second file joined to every impression by a key in
its first column (Ali-CCP's common features, AliExpress's user rows), and
`convert(chunk, joined, context)`, which parses the chunk's rows and writes
their records through `context.router`. Both runners (`local_runner`, one
process; `beam_runner`, Apache Beam) call the same methods, so there is one
implementation of each layout's parsing.

For a joined layout a runner finds the keys a chunk needs (`needed_key` per
row), reads those rows of the joined file, turns each into a picklable part
once (`prepare`, many rows a call, which counts what it sees into the context) and hands the
chunk `{key: part}`.
"""

import abc
import dataclasses

from tfcvr.data.convert.chunks import PARQUET
from tfcvr.data.convert.report import ConversionReport
from tfcvr.data.convert.sink import RecordRouter
from tfcvr.data.convert.vocabulary import VocabularyCounter

PREPARE_ROWS = 1024  # joined rows a runner hands to `JoinedFormat.prepare` at once (bounds its memory)


@dataclasses.dataclass
class ChunkContext:
    """Where a chunk's conversion counts and writes."""

    report: ConversionReport
    vocabulary: VocabularyCounter
    router: RecordRouter | None = None  # None while joined rows are prepared

    def require_router(self) -> RecordRouter:
        """`router`, which a chunk's conversion writes through (`convert_chunk` sets it)."""
        if self.router is None:
            raise RuntimeError(
                "ChunkContext.router is None: records are written only while a chunk converts (`convert_chunk`), "
                "not while joined rows are prepared."
            )
        return self.router

    def malformed(self, chunk, line: int, message: str) -> None:
        """Counts a malformed row of `chunk` at `line` (a row number in Parquet files)."""
        location = f"{chunk.path}: row {line}" if chunk.kind == PARQUET else f"{chunk.path}:{line}"
        self.report.malformed(location, message, (chunk.file_index, line))


@dataclasses.dataclass(frozen=True)
class JoinError:
    """A joined row that could not be parsed: every impression joined to it is malformed with `message`."""

    message: str


class ImpressionFormat(abc.ABC):
    """An input layout. Subclasses set `features`, `group_key` and `main_files` (the impression files, in order)."""

    features: tuple = ()
    group_key: str | None = None
    main_files: tuple = ()

    @abc.abstractmethod
    def convert(self, chunk, joined: dict, context: ChunkContext) -> None:
        """Converts every row of `chunk`; `joined` is {key: part} for a joined layout."""

    def check_inputs(self) -> None:
        """Checks what can be checked before converting (e.g. a table's columns); raises ConversionError.

        Line layouts have nothing to check before their lines are read.
        """
        return None


class JoinedFormat(ImpressionFormat):
    """A layout whose impressions join a row of `joined_file` by key."""

    joined_file: str = ""
    # Report count of the joined file's rows (e.g. "common_feature_rows").
    joined_rows_note: str = "joined_rows"

    @abc.abstractmethod
    def needed_key(self, raw: bytes) -> bytes | None:
        """The joined key an impression line needs (None if the line is too malformed to say)."""

    @abc.abstractmethod
    def prepare(self, rows: list, context: ChunkContext) -> list:
        """Joined lines [(location, line without newline)] -> their parts (or `JoinError`s), counting into `context`.

        Runners hand over many lines at once, so a layout can parse them together.
        """

    @staticmethod
    def joined_key(raw: bytes) -> bytes:
        """The key of a joined line: its first comma-separated field."""
        end = raw.find(b",")
        return raw[:end] if end >= 0 else raw.rstrip(b"\r\n")


def convert_chunk(fmt: ImpressionFormat, chunk, joined: dict, layout, target, max_errors: int, malformed_before=0):
    """Converts one chunk with its own tallies: returns (report, vocabulary); `report.written` is by split.

    `target(split, local_shard)` gives the writer of a local shard
    (`sink.ShardWriters` or `sink.PieceWriters`); `malformed_before` is the
    count of malformed rows in earlier chunks when a runner knows it (so
    `max_errors` stops at the same row as one pass would).
    """
    report = ConversionReport(max_errors, malformed_before)
    vocabulary = VocabularyCounter(fmt.features)
    router = RecordRouter(layout, report, target)
    fmt.convert(chunk, joined, ChunkContext(report, vocabulary, router))
    vocabulary.finish_chunk(chunk.index)
    return report, vocabulary
