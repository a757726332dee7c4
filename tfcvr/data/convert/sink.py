"""Where converted impressions go: sharded TFRecord files of a split, and a validation split.

Two rules make the output independent of how many processes convert it:

- a written row goes to the validation split when a hash of (split seed,
  file index, line number) falls below `valid_fraction` (splitmix64 as the
  mixing function), so the draw depends on the row, not on the order rows
  are processed in;
- within a split, rows are dealt round-robin to the shards in input order:
  the k-th row of the split (counting from 0 over all chunks in order) goes
  to shard k mod num_shards. A chunk knows only its own count, so it deals
  its rows by their rank inside the chunk (`local shard`), and the runner
  maps local shard l of a chunk whose split rows start at ordinal `offset`
  to shard (offset + l) mod num_shards. Concatenating, in chunk order, the
  pieces that map to a shard gives exactly the round-robin file
  (TFRecord files are sequences of self-framed records, so they
  concatenate).
"""

import dataclasses
import os
import shutil
from collections.abc import Callable

import tensorflow as tf

from tfcvr.data import example_writer
from tfcvr.data.convert.report import ConversionReport

VALID_SPLIT = "valid"
_MASK = (1 << 64) - 1


def valid_draw(seed: int, file_index: int, line: int) -> float:
    """A uniform [0, 1) number that depends only on its arguments (splitmix64 finaliser)."""
    x = (seed * 0x9E3779B97F4A7C15 + file_index * 0xD1B54A32D192ED03 + line) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return (x ^ (x >> 31)) / 2.0**64


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """The split files of one conversion.

    Attributes:
      out_dir: output folder (local or gs://).
      split: name of the main split ("train", "test", ...).
      num_shards: files per split.
      valid_fraction: share of rows sent to the "valid" split instead.
      seed: seed of the validation draw.
    """

    out_dir: str
    split: str = "train"
    num_shards: int = 4
    valid_fraction: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.num_shards < 1:
            raise ValueError(f"`num_shards` must be positive. Received: {self.num_shards}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(f"`valid_fraction` must be in [0, 1). Received: {self.valid_fraction}")
        if self.split == VALID_SPLIT and self.valid_fraction:
            raise ValueError(f"The main split cannot be named {VALID_SPLIT!r} when a validation split is drawn.")

    @property
    def splits(self) -> tuple:
        return (self.split, VALID_SPLIT) if self.valid_fraction else (self.split,)

    def paths(self, split: str) -> list:
        return example_writer.shard_paths(os.path.join(self.out_dir, split), self.num_shards)

    def check_empty(self) -> None:
        """Refuses to mix a conversion into existing output (checked before any work)."""
        tf.io.gfile.makedirs(self.out_dir)
        for split in self.splits:
            existing = [p for p in self.paths(split) if tf.io.gfile.exists(p)]
            if existing:
                raise ValueError(f"Output file {existing[0]} already exists; convert into an empty folder.")

    def split_of(self, file_index: int, line: int) -> str:
        if self.valid_fraction and valid_draw(self.seed, file_index, line) < self.valid_fraction:
            return VALID_SPLIT
        return self.split


class RecordRouter:
    """Sends the serialized records of one chunk to their split and local shard.

    Args:
      layout: the `OutputLayout`.
      report: the chunk's own report; its rows written per split are the
        ranks of the next rows inside the chunk.
      target: `target(split, local_shard)` -> a writer with `.write(bytes)`.
    """

    def __init__(self, layout: OutputLayout, report: ConversionReport, target: Callable):
        self.layout = layout
        self._report = report
        self._target = target

    def write(self, serialized: bytes, file_index: int, line: int) -> str:
        """Writes one record of the row at (file_index, line); returns its split."""
        split = self.layout.split_of(file_index, line)
        rank = self._report.written.get(split, 0)
        self._target(split, rank % self.layout.num_shards).write(serialized)
        self._report.wrote(split)
        return split


class ShardWriters:
    """The final shard files, written directly by a runner that converts chunks in order.

    `target(offsets)` gives a chunk's target function, given the split
    ordinals its rows start at (the totals of the chunks before it).
    """

    def __init__(self, layout: OutputLayout):
        self.layout = layout
        self._writers = {s: [tf.io.TFRecordWriter(p) for p in layout.paths(s)] for s in layout.splits}

    def target(self, offsets: dict) -> Callable:
        n = self.layout.num_shards

        def target(split: str, local_shard: int):
            return self._writers[split][(offsets[split] + local_shard) % n]

        return target

    def close(self) -> None:
        for writers in self._writers.values():
            for writer in writers:
                writer.close()


class PieceWriters:
    """One chunk's records as piece files `<piece_dir>/<split>-c<chunk>-l<local shard>`, opened on first use."""

    def __init__(self, piece_dir: str, chunk_index: int):
        self.piece_dir = piece_dir
        self.chunk_index = chunk_index
        self._writers: dict[tuple[str, int], tf.io.TFRecordWriter] = {}

    def target(self, split: str, local_shard: int):
        key = (split, local_shard)
        if key not in self._writers:
            self._writers[key] = tf.io.TFRecordWriter(piece_path(self.piece_dir, split, self.chunk_index, local_shard))
        return self._writers[key]

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


def piece_path(piece_dir: str, split: str, chunk_index: int, local_shard: int) -> str:
    return os.path.join(piece_dir, f"{split}-c{chunk_index:06d}-l{local_shard:05d}.tfrecord")


def shard_pieces(layout: OutputLayout, piece_dir: str, written: dict[int, dict[str, int]]) -> list:
    """[(shard path, [piece paths in chunk order])] from {chunk index: {split: rows written}}.

    A chunk whose split rows start at ordinal `offset` wrote its local shard
    l into final shard (offset + l) mod num_shards.
    """
    n = layout.num_shards
    jobs = []
    for split in layout.splits:
        pieces: dict[int, list[str]] = {shard: [] for shard in range(n)}
        offset = 0
        for chunk_index in sorted(written):
            count = written[chunk_index].get(split, 0)
            for local_shard in range(min(count, n)):
                shard = (offset + local_shard) % n
                pieces[shard].append(piece_path(piece_dir, split, chunk_index, local_shard))
            offset += count
        jobs += [(path, pieces[shard]) for shard, path in enumerate(layout.paths(split))]
    return jobs


def _copy_local(source, target) -> None:
    """Appends a local file to another: in the kernel (sendfile) where it copies file to file (Linux)."""
    size, offset = os.fstat(source.fileno()).st_size, 0
    try:
        while offset < size:
            offset += os.sendfile(target.fileno(), source.fileno(), offset, size - offset)
    except OSError:  # e.g. macOS, whose sendfile writes only to sockets
        source.seek(offset)
        target.seek(0, os.SEEK_END)
        shutil.copyfileobj(source, target, 16 << 20)


def concatenate(target: str, pieces: list, block_bytes: int = 16 << 20) -> str:
    """Writes the pieces one after the other into `target` (an empty list gives an empty shard)."""
    if "://" not in target and all("://" not in piece for piece in pieces):
        with open(target, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as f:
                    _copy_local(f, out)
        return target
    with tf.io.gfile.GFile(target, "wb") as out:
        for piece in pieces:
            with tf.io.gfile.GFile(piece, "rb") as f:
                while block := f.read(block_bytes):
                    out.write(block)
    return target
