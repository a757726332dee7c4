"""Where converted impressions go: sharded TFRecord files of a split, and a validation split.

The validation split is drawn row by row with a seeded generator in reading
order, so the same input and seed give the same split; model selection reads
it instead of the test file, which is converted on its own.
"""

import os
import random

import tensorflow as tf

from tfcvr.data import example_writer
from tfcvr.data.convert.report import ConversionReport

VALID_SPLIT = "valid"


class ExampleSink:
    """Writes serialized tf.Examples round-robin into `<out_dir>/<split>-0000i-of-0000N.tfrecord`.

    Args:
      out_dir: output folder (local or gs://), created if missing.
      report: counts every row written, by split.
      split: name of the main split ("train", "test", ...).
      num_shards: files per split.
      valid_fraction: share of rows sent to the "valid" split instead.
      seed: seed of the validation draw.
    """

    def __init__(
        self,
        out_dir: str,
        report: ConversionReport,
        split: str = "train",
        num_shards: int = 4,
        valid_fraction: float = 0.0,
        seed: int = 0,
    ):
        if num_shards < 1:
            raise ValueError(f"`num_shards` must be positive. Received: {num_shards}")
        if not 0.0 <= valid_fraction < 1.0:
            raise ValueError(f"`valid_fraction` must be in [0, 1). Received: {valid_fraction}")
        if split == VALID_SPLIT and valid_fraction:
            raise ValueError(f"The main split cannot be named {VALID_SPLIT!r} when a validation split is drawn.")
        tf.io.gfile.makedirs(out_dir)
        self.out_dir = out_dir
        self.split = split
        self.valid_fraction = valid_fraction
        self._report = report
        self._random = random.Random(seed)
        splits = [split] + ([VALID_SPLIT] if valid_fraction else [])
        self.paths = {name: example_writer.shard_paths(os.path.join(out_dir, name), num_shards) for name in splits}
        for paths in self.paths.values():
            existing = [p for p in paths if tf.io.gfile.exists(p)]
            if existing:
                raise ValueError(f"Output file {existing[0]} already exists; convert into an empty folder.")
        self._writers = {name: [tf.io.TFRecordWriter(p) for p in paths] for name, paths in self.paths.items()}
        self._next = {name: 0 for name in splits}

    def write(self, serialized: bytes) -> str:
        """Writes one serialized tf.Example; returns the split it went to."""
        split = self.split
        if self.valid_fraction and self._random.random() < self.valid_fraction:
            split = VALID_SPLIT
        writers = self._writers[split]
        writers[self._next[split] % len(writers)].write(serialized)
        self._next[split] += 1
        self._report.wrote(split)
        return split

    def close(self) -> None:
        for writers in self._writers.values():
            for writer in writers:
                writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
