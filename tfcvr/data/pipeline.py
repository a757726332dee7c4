"""TFRecord input pipeline described by a schema.json.

files -> (seeded) shuffle of shards -> interleave blocks of 1,024 records per
file -> cut into chunks (a shuffle window of `shuffle_buffer_size` records in
training, a batch otherwise) -> per chunk: `parse_example` (vectorised over
the chunk: several times faster than parsing record by record), validate,
hash categorical values, drop invalid records, one vectorised permutation of
the parsed rows (not a per-record shuffle buffer) -> rebatch into batches ->
prefetch.

Parsing a whole shuffle window in one call instead of batch by batch, and
re-cutting the parsed tensors, costs less CPU per record: fewer, larger ops
(benchmarks/throughput.py measures the pipeline). Because the batches are cut
after invalid records are dropped, every batch but the last is full.

With `cache=True` the records are read, parsed, validated and hashed once,
into columns in host memory, and every epoch is a seeded permutation of all
records gathered batch by batch: reading and parsing tf.Examples takes more
CPU than a small machine can spare next to the fastest models (see
`TFRecordPipeline`).

tf.data autotuning is switched off with explicit parallelism: with it on,
about half of the training runs on a 2-core machine stalled with the whole
step on one core; with it off, none did.
"""

import contextlib
import copy
import functools
from collections.abc import Iterable, Iterator, Sequence

import tensorflow as tf

from tfcvr.data import bad_records, integrity, transform
from tfcvr.data import schema as schema_lib

INVALID_CONVERSION_POLICIES = ("error", "drop")
# Records are read in blocks: one tf.data element per 1,024 records instead of one per record removes most of
# tf.data's per-element overhead (smaller blocks keep more of it; benchmarks/throughput.py times the input).
# `rebatch` re-cuts the blocks.
_READ_BLOCK = 1024


def resolve_files(file_pattern: str | Iterable[str]) -> list:
    """Expands a glob, a comma-separated list of globs or a list of them.

    Raises `ValueError` naming each glob that matches no file.
    """
    patterns = file_pattern.split(",") if isinstance(file_pattern, str) else list(file_pattern)
    files = []
    for pattern in (p.strip() for p in patterns):
        matched = sorted(tf.io.gfile.glob(pattern))
        if not matched:
            raise ValueError(f"No file matches the input pattern {pattern!r}.")
        files.extend(matched)
    return files


def has_ground_truth(files: Sequence[str]) -> bool:
    """Whether the first readable record (of the first file that has one) carries the simulator's ground truth."""
    for path in files:
        try:
            records = [record for record in tf.data.TFRecordDataset(path).take(1)]
        except tf.errors.DataLossError:
            continue  # unreadable from its first record: skipped under skip_corrupt_records, refused otherwise
        for record in records:
            keys = set(tf.train.Example.FromString(record.numpy()).features.feature)
            return all(k in keys for k in schema_lib.GROUND_TRUTH_FLOAT_KEYS + schema_lib.GROUND_TRUTH_INT_KEYS)
    return False


class TFRecordPipeline:
    """Batches of (features, labels) from TFRecord shards of tf.train.Example.

    Features are the model inputs: categorical values hashed into
    `[0, num_buckets)` (int64), numeric values as float32, each of shape
    [batch]; a categorical_list is [batch, max_length] bucket ids padded
    with -1. Labels always hold `click` and `conversion` (int64 0/1); with
    `ground_truth=True` also `true_ctr`, `true_cvr` (float32) and
    `potential_conversion` (int64).

    Args:
      file_pattern: a glob (local or gs://), a comma-separated list of globs, or
        a list of them.
      schema: a `Schema`.
      batch_size: examples per batch.
      shuffle: shuffle shard order and records (training).
      seed: seed of both shuffles; the same seed gives the same order.
      shuffle_buffer_size: records per shuffle window (each window of the
        interleaved stream is permuted as a whole); default 8 batches.
      ground_truth: also parse the simulator's ground truth as labels.
      group: also return the raw (un-hashed) values of the schema's
        `group_key` as labels["group"], for GAUC.
      invalid_conversion: what to do with a record with conversion=1 and
        click=0, which is invalid input because conversion is post-click:
        "error" (default) fails naming the record; "drop" removes such records
        and counts them in `invalid_conversions_dropped`.
      drop_remainder: drop the last partial batch.
      cycle_length: shards read in parallel.
      cache: read, parse and hash the records once, on the first `dataset()`
        call for a shard, and keep the model-ready columns in host memory
        (per record 8 bytes per id and label, 8 x max_length per list, 4 per
        numeric value: 200 bytes for Ali-CCP's 23 fields; twice that while
        filling); every epoch then draws a full permutation of
        the records (a global shuffle, not windows) and gathers its batches
        from memory. For several epochs over data that fits in RAM: a batch
        then costs one gather instead of reading, parsing and hashing, which
        speeds up the input many times and the faster models' training too
        (benchmarks/throughput.py --cache measures both). The first
        `dataset()` call blocks while it parses every record of the shard.
        Records dropped under invalid_conversion="drop" are counted once.
      skip_corrupt_records: read a file that does not read whole (a corrupt
        record, a file cut short) up to its first unreadable record and skip
        the rest of it, instead of failing: TFRecord has no sync marker, so
        the reader cannot resume past a bad record. The files are scanned once
        before the first batch; each damaged file is logged with what it
        loses, and `corrupt_records_skipped` reports them. Off by default:
        a damaged file is then a `DataError` naming the file and record.

    Errors from bad records surface while iterating; iterate inside
    `with pipeline.named_errors():` to get a `DataError` naming the file,
    record and feature instead of TensorFlow's bare op error.
    """

    def __init__(
        self,
        file_pattern,
        schema: schema_lib.Schema,
        batch_size: int,
        shuffle: bool = False,
        seed=None,
        shuffle_buffer_size=None,
        ground_truth: bool = False,
        invalid_conversion: str = "error",
        drop_remainder: bool = False,
        cycle_length: int = 4,
        group: bool = False,
        cache: bool = False,
        skip_corrupt_records: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be positive. Received: {batch_size}")
        if invalid_conversion not in INVALID_CONVERSION_POLICIES:
            raise ValueError(
                f"`invalid_conversion` must be one of {INVALID_CONVERSION_POLICIES}. Received: {invalid_conversion!r}"
            )
        self.files = resolve_files(file_pattern)
        self.schema = schema
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.shuffle_buffer_size = shuffle_buffer_size or 8 * batch_size
        self.ground_truth = ground_truth
        self.invalid_conversion = invalid_conversion
        self.drop_remainder = drop_remainder
        self.cycle_length = cycle_length
        if group and schema.group_key is None:
            raise ValueError("`group=True` needs a schema with a 'group_key' (the feature to group GAUC by).")
        self.group = group
        self._spec = {**transform.feature_spec(schema), **transform.label_spec(schema, ground_truth)}
        self._dropped = tf.Variable(0, dtype=tf.int64, trainable=False, name="invalid_conversions_dropped")
        self.cache = cache
        self.skip_corrupt_records = skip_corrupt_records
        # (num_shards, shard_index) -> _Columns of every record of that shard, when cached
        self._columns: dict[tuple[int, int], _Columns] = {}

    def with_seed(self, seed: int | None) -> "TFRecordPipeline":
        """This pipeline with another shuffle seed; it shares the cache and the dropped-records count.

        Runs that differ only in their seed (a leaderboard's) parse cached
        records once between them.
        """
        reseeded = copy.copy(self)  # shallow: the same `_columns` dict and `_dropped` variable
        reseeded.seed = seed
        return reseeded

    @property
    def invalid_conversions_dropped(self) -> int:
        """Records dropped so far under `invalid_conversion="drop"`."""
        return int(self._dropped.numpy())

    @functools.cached_property
    def _scans(self) -> list[integrity.FileScan]:
        """Every file read once as far as it goes (needed only to count records, or to skip damaged parts)."""
        scans = integrity.scan(self.files)
        if self.skip_corrupt_records:
            integrity.report_skipped(scans)
        return scans

    def record_count(self) -> int:
        """Records one pass reads (before invalid records are dropped), after a read of every file.

        A file that does not read whole is a `DataError` naming it and its
        first unreadable record, unless `skip_corrupt_records`: its readable
        records count then.
        """
        if not self.skip_corrupt_records:
            return integrity.check_whole(self.files)
        return sum(found.records for found in self._scans)

    @property
    def corrupt_records_skipped(self) -> list[dict]:
        """Each damaged file whose unreadable rest `skip_corrupt_records` skips, as `Damage.as_dict()`; [] otherwise."""
        if not self.skip_corrupt_records:
            return []
        return [found.damage.as_dict() for found in self._scans if not found.whole]

    def _files_and_limits(self) -> tf.data.Dataset:
        """(file, records to read from it: -1 for all) for every file; a damaged file's readable ones when skipping."""
        if self.skip_corrupt_records:
            limits = [-1 if found.whole else found.records for found in self._scans]
        else:
            limits = [-1] * len(self.files)
        return tf.data.Dataset.from_tensor_slices((self.files, tf.constant(limits, tf.int64)))

    def sharding(self, num_shards: int) -> str:
        """How `dataset(num_shards=...)` splits the data: "none", "file" or "record".

        By file when there are at least as many files as shards (each reader
        opens only its own files), by record otherwise (every reader reads
        every file and keeps every num_shards-th record of each file).
        """
        if num_shards < 1:
            raise ValueError(f"`num_shards` must be positive. Received: {num_shards}")
        if num_shards == 1:
            return "none"
        return "file" if len(self.files) >= num_shards else "record"

    def dataset(
        self, epochs: int | None = 1, epoch_index: int = 0, num_shards: int = 1, shard_index: int = 0
    ) -> tf.data.Dataset:
        """The batched dataset; `epochs=None` repeats forever.

        `epoch_index` varies the shuffle seed, so a training loop that builds a
        new dataset per epoch sees a new order each epoch, reproducibly (the
        same seed and index give the same order, also after a restart).
        `num_shards`/`shard_index`: this reader's part of the data when several
        workers read it (`sharding` says how it is split).
        """
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"`shard_index` must be in [0, {num_shards}). Received: {shard_index}")
        seed = None if self.seed is None else (self.seed * 1_000_003 + epoch_index) % 2**31
        if self.cache:
            dataset = self._cached_batches(self._cached_columns(num_shards, shard_index), epochs, seed)
        else:
            blocks = self._blocks(num_shards, shard_index, self.shuffle, seed).repeat(epochs)
            chunk = self.shuffle_buffer_size if self.shuffle else self.batch_size

            def model_batch(
                index: tf.Tensor, serialized: tf.Tensor
            ) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
                batch = self._model_batch(serialized)
                return _shuffle_window(index, batch, seed) if self.shuffle else batch

            chunks = blocks.rebatch(chunk).enumerate().map(model_batch, num_parallel_calls=2, deterministic=True)
            dataset = chunks.rebatch(self.batch_size, drop_remainder=self.drop_remainder)
        return _without_autotune(dataset.prefetch(2))

    def _blocks(self, num_shards: int, shard_index: int, shuffled: bool, seed=None) -> tf.data.Dataset:
        """Serialized records of the shard in blocks of `_READ_BLOCK`; the files in a `seed`ed order if `shuffled`."""
        sharding = self.sharding(num_shards)
        files = self._files_and_limits()
        if sharding == "file":
            files = files.shard(num_shards, shard_index)
        if shuffled:
            files = files.shuffle(len(self.files), seed=seed, reshuffle_each_iteration=True)

        def read(path: tf.Tensor, limit: tf.Tensor) -> tf.data.Dataset:
            records = tf.data.TFRecordDataset(path).take(limit)
            if sharding == "record":
                records = records.shard(num_shards, shard_index)
            return records.batch(_READ_BLOCK)

        return files.interleave(
            read,
            cycle_length=min(self.cycle_length, len(self.files)),
            num_parallel_calls=min(self.cycle_length, len(self.files)),
            deterministic=True,
        )

    def _cached_columns(self, num_shards: int, shard_index: int) -> "_Columns":
        """Every record of the shard as model-ready columns, in unshuffled reading order: parsed once, kept."""
        key = (num_shards, shard_index)
        if key not in self._columns:
            # Windows of 16 blocks: a large parse per call, and few pieces to concatenate.
            chunks = (
                self._blocks(num_shards, shard_index, shuffled=False)
                .rebatch(16 * _READ_BLOCK)
                .map(self._model_batch, num_parallel_calls=2, deterministic=True)
                .prefetch(2)
            )
            self._columns[key] = _Columns(_without_autotune(chunks))
        return self._columns[key]

    def _cached_batches(self, columns: "_Columns", epochs, seed) -> tf.data.Dataset:
        """Batches gathered from in-memory columns; each pass over them is a new permutation when shuffling."""
        full, remainder = divmod(columns.records, self.batch_size)
        batches = full if self.drop_remainder or not remainder else full + 1
        if batches == 0:
            epochs = 1  # one empty pass: repeating nothing forever would never end

        def one_pass(pass_index: tf.Tensor) -> tf.data.Dataset:
            order = tf.range(columns.records, dtype=tf.int64)
            if self.shuffle and seed is None:
                order = tf.random.shuffle(order)
            elif self.shuffle:
                order = tf.random.experimental.stateless_shuffle(
                    order, seed=tf.stack([tf.constant(seed, tf.int64), pass_index])
                )
            return tf.data.Dataset.range(batches).map(
                lambda b: columns.gather(order[b * self.batch_size : (b + 1) * self.batch_size])
            )

        passes = tf.data.Dataset.counter() if epochs is None else tf.data.Dataset.range(epochs)
        return passes.flat_map(one_pass)

    def serialized_dataset(self) -> tf.data.Dataset:
        """Batches of (serialized tf.Examples, labels), in file order, once.

        For scoring an exported model through its `serving_default`
        signature: the records are validated like `dataset()`'s (and dropped
        under invalid_conversion="drop") and passed on unparsed.
        """
        blocks = self._files_and_limits().interleave(
            lambda path, limit: tf.data.TFRecordDataset(path).take(limit).batch(_READ_BLOCK),
            cycle_length=1,
            num_parallel_calls=1,
            deterministic=True,
        )

        def split(serialized: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
            parsed = self.parse_batch(serialized)
            labels = self._labels(parsed)
            return self._drop_invalid(serialized, labels)

        dataset = blocks.rebatch(self.batch_size).map(split, num_parallel_calls=2, deterministic=True)
        return _without_autotune(dataset.prefetch(2))

    @contextlib.contextmanager
    def named_errors(self) -> Iterator[None]:
        """Turns an input error raised in the block into a `DataError` naming the record."""
        with bad_records.named_data_errors(self.files, self.parse_batch, self.skip_corrupt_records):
            yield

    def parse_batch(self, serialized: tf.Tensor, names: tf.Tensor | None = None) -> dict:
        """Parses and validates serialized tf.Examples; `names` label records in errors."""
        parsed = tf.compat.v1.io.parse_example(serialized, self._spec, example_names=names)
        # Without names, one constant: no string per record to build and copy on every batch.
        record_names = names if names is not None else tf.constant("<record>")
        checks = [self._check_finite(parsed, f.name, record_names) for f in self.schema.numeric]
        click = parsed[self.schema.labels["click"]]
        conversion = parsed[self.schema.labels["conversion"]]
        for key, label in (("click", click), ("conversion", conversion)):
            checks.append(
                _assert_all(
                    (label == 0) | (label == 1),
                    f"Label '{self.schema.labels[key]}' ({key}) must be 0 or 1.",
                    record_names,
                )
            )
        if self.invalid_conversion == "error":
            checks.append(
                _assert_all(
                    (conversion <= click),
                    f"Record has conversion=1 but click=0 ('{self.schema.labels['conversion']}' is a "
                    "post-click label); pass invalid_conversion='drop' to drop and count such records.",
                    record_names,
                )
            )
        with tf.control_dependencies(checks):
            return {key: tf.identity(value) for key, value in parsed.items()}

    def _model_batch(self, serialized):
        """(features, labels) of serialized records: parsed, validated, hashed; invalid ones dropped."""
        parsed = self.parse_batch(serialized)
        features = transform.to_model_inputs(parsed, self.schema)
        labels = self._labels(parsed)
        return self._drop_invalid(features, labels)

    def _drop_invalid(self, inputs, labels: dict):
        """(inputs, labels) without the conversion-without-click rows under invalid_conversion="drop"."""
        if self.invalid_conversion != "drop":
            return inputs, labels
        keep = labels["conversion"] <= labels["click"]
        self._dropped.assign_add(tf.reduce_sum(tf.cast(~keep, tf.int64)))
        # Every tensor is dense [batch, ...] here (lists are padded by the transform).
        return tf.nest.map_structure(lambda value: tf.boolean_mask(value, keep), (inputs, labels))

    def _labels(self, parsed: dict) -> dict:
        labels = {key: parsed[self.schema.labels[key]] for key in schema_lib.LABEL_KEYS}
        if self.ground_truth:
            for key in schema_lib.GROUND_TRUTH_FLOAT_KEYS + schema_lib.GROUND_TRUTH_INT_KEYS:
                labels[key] = parsed[key]
        if self.group:
            labels["group"] = parsed[self.schema.group_key]
        return labels

    @staticmethod
    def _check_finite(parsed, name, record_names):
        return _assert_all(tf.math.is_finite(parsed[name]), f"Numeric feature '{name}' is NaN or Inf.", record_names)


class _Columns:
    """A dataset's elements concatenated in memory, one matrix per (dtype, shape) kind of column.

    Columns of one kind (e.g. every int64 id and label) are stacked side by
    side, so a batch is one gather per kind instead of one per column (one
    gather of a stacked matrix is several times faster than one per column;
    benchmarks/throughput.py --cache measures the cached input).
    """

    def __init__(self, dataset: tf.data.Dataset):
        self._structure = dataset.element_spec
        kind_of = [(spec.dtype, tuple(spec.shape[1:])) for spec in tf.nest.flatten(self._structure)]
        self._kinds = list(dict.fromkeys(kind_of))
        # Each flattened column's (kind, column within that kind's matrix).
        self._position = [(self._kinds.index(kind), kind_of[:i].count(kind)) for i, kind in enumerate(kind_of)]
        pieces = [self._stack(tf.nest.flatten(element)) for element in dataset]
        if not pieces:
            pieces = [self._stack([tf.zeros([0, *shape], dtype) for dtype, shape in kind_of])]
        self.matrices = [tf.concat([piece[k] for piece in pieces], axis=0) for k in range(len(self._kinds))]
        self.records = int(self.matrices[0].shape[0])

    def _stack(self, flat: list) -> list:
        return [
            tf.stack([column for column, (kind, _) in zip(flat, self._position) if kind == k], axis=-1)
            for k in range(len(self._kinds))
        ]

    def gather(self, rows: tf.Tensor) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        """The element structure of the dataset, holding `rows` of every column."""
        kinds = [tf.unstack(tf.gather(matrix, rows), axis=-1) for matrix in self.matrices]
        return tf.nest.pack_sequence_as(self._structure, [kinds[kind][index] for kind, index in self._position])


def _without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.autotune.enabled = False  # see the module docstring
    return dataset.with_options(options)


def _shuffle_window(index, batch, seed):
    """One random permutation (seeded by the window's index) of the rows of every tensor of a parsed window.

    The parsed ids are permuted, not the serialized records: gathering a few
    int64 columns costs less than copying every record's string.
    """
    rows = tf.range(tf.shape(tf.nest.flatten(batch)[0])[0])
    if seed is None:
        order = tf.random.shuffle(rows)
    else:
        order = tf.random.experimental.stateless_shuffle(rows, seed=tf.stack([tf.constant(seed, tf.int64), index]))
    return tf.nest.map_structure(lambda column: tf.gather(column, order), batch)


def _assert_all(condition: tf.Tensor, message: str, record_names: tf.Tensor):
    """Fails with `message` and the name of the first record where `condition` is false.

    `record_names`: one name per record, or one scalar name for all.
    """
    if record_names.shape.rank == 0:
        first_bad = record_names
    else:
        # A sentinel True keeps argmin defined on an empty batch.
        position = tf.argmin(tf.concat([tf.cast(condition, tf.int32), [1]], axis=0))
        first_bad = tf.gather(tf.concat([record_names, [""]], axis=0), position)
    return tf.debugging.Assert(tf.reduce_all(condition), [message, "Name:", first_bad], summarize=1)
