"""Input files cut into chunks that convert independently: line-aligned byte ranges, or Parquet row groups.

A chunk of a text file owns the lines that *start* inside its byte range
[start, end) (the Hadoop convention), so chunks are cut by size alone and a
reader finds its first line by skipping to the end of the line before
`start`. `number_lines` fills in each chunk's first line number from the
line counts of the chunks before it, so every row is named `file:line`
whichever process converts it, and rows have a position (file index, line)
that does not depend on the order chunks are processed in.
"""

import dataclasses
import io
from collections.abc import Iterable, Iterator, Sequence

from tfcvr import optional
from tfcvr.data.convert import files

PARQUET_FEATURE = "Reading Parquet input (*.parquet)"

DEFAULT_CHUNK_BYTES = 64 << 20
LINES, PARQUET = "lines", "parquet"


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One piece of one input file.

    Attributes:
      index: position of the chunk in the plan (chunks of file 0 first, in
        byte order); records are written in this order.
      file_index: position of the file in the input list (the order of the flag's
        comma-separated globs, each glob's matches sorted).
      path: the file.
      start, end: byte range (LINES) or row-group range (PARQUET).
      kind: LINES or PARQUET.
      first_line: number (from 1) of the chunk's first line or row; None
        until `number_lines` has run.
    """

    index: int
    file_index: int
    path: str
    start: int
    end: int
    kind: str = LINES
    first_line: int | None = None

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, raw bytes with newline) of the lines that start in this chunk.

        Positions come from `tell()`, not from line lengths: tf.io.gfile
        (gs://) drops "\r" from the lines it returns.
        """
        if self.kind == PARQUET:
            raise ValueError(f"{self.path} is a Parquet file; this layout reads text lines (give a CSV/text file).")
        line = self.first_line if self.first_line is not None else 1
        with files.open_binary(self.path) as f:
            if self.start > 0:
                # The line that contains byte start-1 belongs to the chunk before (it started there).
                f.seek(self.start - 1)
                f.readline()
            position = f.tell()
            if files.is_local(self.path):  # "\r" kept: lengths are positions, so read blocks, not lines
                for raw in _lines_of_range(f, self.end - position):
                    yield line, raw
                    line += 1
                return
            while position < self.end:
                raw = f.readline()
                if not raw:
                    break
                yield line, raw
                position = f.tell()
                line += 1

    @property
    def text_bytes(self) -> int:
        """Bytes of text the chunk covers (0 for Parquet row groups): what a progress bar counts."""
        return self.end - self.start if self.kind == LINES else 0

    def count_lines(self) -> int:
        if self.kind == PARQUET:
            return _parquet_rows_in(self.path, self.start, self.end)
        return sum(1 for _ in self.lines())


def _lines_of_range(f, size: int, block_bytes: int = 8 << 20) -> Iterator[bytes]:
    """The lines of a file that start in its next `size` bytes (the last one read to its end), block by block."""
    pending = b""
    while size > 0:
        block = f.read(min(size, block_bytes))
        if not block:
            break
        size -= len(block)
        data = pending + block
        if size <= 0 and not data.endswith(b"\n"):
            data += f.readline()  # the line that starts in the range ends after it
        cut = len(data) if size <= 0 else data.rfind(b"\n") + 1
        yield from io.BytesIO(data[:cut])
        pending = data[cut:]
    if pending:
        yield pending  # the file ended inside the range without a final newline


def plan(paths: Sequence[str], chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[Chunk]:
    """Chunks of `paths` in file order (Parquet files by row groups of about `chunk_bytes`)."""
    if chunk_bytes < 1:
        raise ValueError(f"`chunk_bytes` must be positive. Received: {chunk_bytes}")
    chunks: list[Chunk] = []
    for file_index, path in enumerate(paths):
        for start, end, kind in _ranges(path, chunk_bytes):
            chunks.append(Chunk(len(chunks), file_index, path, start, end, kind))
    return chunks


def number_lines(chunks: Iterable[Chunk], line_counts: dict[int, int]) -> list[Chunk]:
    """Chunks with `first_line` set from {chunk index: lines it owns} (prefix sums per file)."""
    numbered: list[Chunk] = []
    next_line: dict[int, int] = {}  # {file index: the number of its next line}
    for chunk in sorted(chunks, key=lambda c: c.index):
        first = next_line.get(chunk.file_index, 1)
        numbered.append(dataclasses.replace(chunk, first_line=first))
        next_line[chunk.file_index] = first + line_counts[chunk.index]
    return numbered


def _ranges(path: str, chunk_bytes: int) -> Iterator[tuple[int, int, str]]:
    if is_parquet(path):
        # Row groups are the unit Parquet can read alone; consecutive groups are packed up to chunk_bytes.
        metadata = _parquet_metadata(path)
        start, size = 0, 0
        for group in range(metadata.num_row_groups):
            size += metadata.row_group(group).total_byte_size
            if size >= chunk_bytes:
                yield start, group + 1, PARQUET
                start, size = group + 1, 0
        if start < metadata.num_row_groups or metadata.num_row_groups == 0:
            yield start, metadata.num_row_groups, PARQUET
        return
    total = files.size(path)
    for start in range(0, max(total, 1), chunk_bytes):
        yield start, min(start + chunk_bytes, total), LINES


def is_parquet(path: str) -> bool:
    """Parquet files are told by their name (*.parquet); every other file is read as text lines."""
    return path.endswith(".parquet")


def _parquet_metadata(path: str):
    pq = optional.require("pyarrow.parquet", PARQUET_FEATURE)

    with files.open_binary(path) as f:
        return pq.ParquetFile(f).metadata


def _parquet_rows_in(path: str, first_group: int, end_group: int) -> int:
    metadata = _parquet_metadata(path)
    return sum(metadata.row_group(g).num_rows for g in range(first_group, end_group))
