"""Ali-CCP -> tf.Examples: the raw Tianchi release and PaddleRec's multi-hot text layout.

Raw release (Ma et al., "Entire Space Multi-Task Model", SIGIR 2018, https://arxiv.org/abs/1804.07931;
https://tianchi.aliyun.com/dataset/408): `sample_skeleton_*.csv` has one
impression per line, `sample_id,click,conversion,common_feature_index,
feature_num,feature_list`; `common_features_*.csv` has
`common_feature_index,feature_num,feature_list` with the user fields shared by
many impressions. A feature_list is `field\\x02id\\x03value` entries joined by
`\\x01`. The skeleton is converted in chunks, each in batches of rows parsed and
encoded with array operations (`feature_lists`, `field_encoder`,
`tfcvr.data.example_columns`); each common row that an impression refers to
is parsed and serialized once (`RawFormat.prepare`; its truncated lists and
unknown fields are counted once, and its categorical values enter the
vocabulary whether or not its impressions are written), and the runner hands
each chunk the parts of the keys it needs.

A row is malformed (counted, named by file and line) when a column or its
feature_list breaks the format (`feature_lists`), a field is in the wrong
file (user fields belong in the common features), a dense field's value is
not a finite number, or its common row is malformed; a well-formed row is
then dropped (counted) when its common row is missing or its labels break
the post-click rule.

A record is the serialized common part followed by the serialized impression
part: two concatenated `tf.train.Example` messages are one Example whose
feature map is the union (protobuf merges repeated embedded messages), so the
long user part is serialized once per user rather than once per impression.

Fields (`aliccp_fields`) become features by the `single_value` policy
(`field_encoder`). Values of fields outside the 23 are counted and not
written.
"""

import dataclasses

import numpy as np

from tfcvr.data import example_columns
from tfcvr.data import schema as schema_lib
from tfcvr.data.convert import aliccp_fields, feature_lists, field_encoder, formats, values
from tfcvr.data.convert import labels as labels_lib

MISSING_COMMON_FEATURES = "missing_common_features"
COMMON_FEATURE_ROWS = "common_feature_rows"
GROUP_KEY = "101"  # the user id: GAUC groups by user
BATCH_ROWS = 8192  # impression rows parsed and encoded together
LABEL_COLUMNS = ("sample_id", "click", "conversion")


def features(single_value: str = "list", dense: bool = True) -> list:
    """Schema features of a conversion (bucket sizes and list lengths still to be measured)."""
    field_encoder.check_single_value(single_value)
    result = []
    for field in aliccp_fields.FIELDS:
        is_list = single_value == "list" and field in aliccp_fields.MULTI_VALUED
        kind = schema_lib.CATEGORICAL_LIST if is_list else schema_lib.CATEGORICAL
        result.append(schema_lib.Feature(name=field, type=kind, dtype="int64"))
    if dense:
        result += [
            schema_lib.Feature(name=aliccp_fields.dense_name(f), type=schema_lib.NUMERIC, dtype="float32")
            for f in aliccp_fields.DENSE
        ]
    return result


_USER = frozenset(aliccp_fields.USER_FIELDS)
_IMPRESSION_FIELDS = tuple(f for f in aliccp_fields.FIELDS if f not in _USER)
_USER_DENSE_NAMES = tuple(aliccp_fields.dense_name(f) for f in aliccp_fields.USER_FIELDS if f in aliccp_fields.DENSE)
_USER_DENSE_NAMES_SET = frozenset(_USER_DENSE_NAMES)


def parse_batch(texts: list, feature_nums: list, allowed: tuple, where: str, encoder) -> tuple:
    """Feature lists of a batch -> (entries, numbers, {row: error}).

    The error of a row is the first rule it breaks: the list's format
    (`feature_lists.explain`), a field outside `allowed` (named as found in
    `where`), then a dense value that is not a finite number. Values of
    fields outside the 23 are counted (rows without error only).
    """
    entries = feature_lists.parse(texts, np.asarray(feature_nums, np.int64), aliccp_fields.FIELDS)
    errors = {}
    for row in np.flatnonzero(entries.bad_row).tolist():
        errors[row] = feature_lists.explain(texts[row].decode(), feature_nums[row])
        if errors[row] is None:
            raise RuntimeError(f"feature list {texts[row][:200]!r} was refused but breaks no rule")  # a bug
    allowed_index = np.zeros(len(aliccp_fields.FIELDS) + 1, bool)  # the last slot: field -1 (unknown)
    allowed_index[[aliccp_fields.FIELDS.index(f) for f in allowed]] = True
    allowed_index[-1] = True
    misplaced = ~allowed_index[entries.field]
    fields_of: dict[int, set[str]] = {}  # {row: its fields outside `allowed`}
    for row, field in zip(entries.row[misplaced].tolist(), entries.field[misplaced].tolist()):
        fields_of.setdefault(row, set()).add(aliccp_fields.FIELDS[field])
    for row, fields in fields_of.items():
        errors[row] = f"field(s) {sorted(fields)} in the {where}; expected only {sorted(allowed)} there"
    numbers, value_errors = encoder.numbers(entries, allowed)
    for row, message in value_errors.items():
        errors.setdefault(row, message)
    unknown = entries.field < 0
    if unknown.any():
        fine = np.array([row not in errors for row in entries.row[unknown].tolist()], bool)
        for name, ok in zip(entries.unknown_fields, fine.tolist()):
            if ok:
                encoder.report.count(f"unknown_field_values/{name}")
    return entries, numbers, errors


@dataclasses.dataclass(frozen=True)
class CommonPart:
    """A common row prepared once: its serialized user fields and its dense values (counted per impression).

    `numbers` are the values of `_USER_DENSE_NAMES`, in that order.
    """

    serialized: bytes
    numbers: tuple


class _AliccpLayout:
    """What both Ali-CCP layouts share: the policies, the features and the `FieldEncoder` they imply.

    Args:
      paths: the impression files (in order).
      single_value, max_list_length, invalid_conversion: the policies (`field_encoder`, `labels`).
    """

    group_key: str | None = GROUP_KEY
    dense = True  # whether the layout carries feature values (numeric `D<field>` features)

    def __init__(self, paths, single_value="list", max_list_length=64, invalid_conversion="drop"):
        labels_lib.check_policy(invalid_conversion)
        self.features = tuple(features(single_value, dense=self.dense))
        self.main_files = tuple(paths)
        self.single_value = single_value
        self.max_list_length = max_list_length
        self.invalid_conversion = invalid_conversion

    def encoder(self, context: formats.ChunkContext) -> field_encoder.FieldEncoder:
        return field_encoder.FieldEncoder(
            self.single_value, self.max_list_length, context.vocabulary, context.report, dense=self.dense
        )


class RawFormat(_AliccpLayout, formats.JoinedFormat):
    """The raw release: skeleton lines joined with their common features by common_feature_index.

    Args:
      skeleton, common: the two files of one split (local or gs://); the
        skeleton may be several files (in order).
      single_value, max_list_length, invalid_conversion: the policies (`field_encoder`, `labels`).
    """

    joined_rows_note = COMMON_FEATURE_ROWS

    def __init__(self, skeleton, common: str, single_value="list", max_list_length=64, invalid_conversion="drop"):
        super().__init__(skeleton, single_value, max_list_length, invalid_conversion)
        self.joined_file = common

    def needed_key(self, raw: bytes) -> bytes | None:
        columns = raw.split(b",", 4)
        return columns[3] if len(columns) == 5 else None

    def prepare(self, rows: list, context: formats.ChunkContext) -> list:
        """The user parts of common rows [(location, line)]; a malformed row's part is a `JoinError` naming it."""
        encoder = self.encoder(context)
        errors, good, texts, feature_nums = {}, [], [], []
        for i, (_, raw) in enumerate(rows):
            try:
                columns = raw.decode("ascii").split(",")
                if len(columns) != 3:
                    raise ValueError(f"expected 3 comma-separated fields, found {len(columns)}")
                feature_nums.append(values.parse_id(columns[1], "feature_num"))
            except (UnicodeDecodeError, ValueError) as e:
                errors[i] = str(e)
                continue
            good.append(i)
            texts.append(columns[2].encode())
        fields = aliccp_fields.USER_FIELDS
        entries, numbers, list_errors = parse_batch(texts, feature_nums, fields, "common features", encoder)
        errors.update((good[row], message) for row, message in list_errors.items())
        prepared = np.array([row for row, i in enumerate(good) if i not in errors], np.int64)
        user_columns = encoder.columns(entries, prepared, fields, numbers)
        buffer, offsets = example_columns.encode(user_columns, len(prepared))
        ends = offsets.tolist()
        dense = np.stack([c.values for c in user_columns if c.name in _USER_DENSE_NAMES_SET], axis=1).tolist()
        parts = {
            good[row]: CommonPart(buffer[ends[k] : ends[k + 1]], tuple(dense[k]))
            for k, row in enumerate(prepared.tolist())
        }
        return [
            parts[i]
            if i in parts
            else formats.JoinError(f"its common features ({location}) are malformed: {errors[i]}")
            for i, (location, _) in enumerate(rows)
        ]

    def convert(self, chunk, joined: dict, context: formats.ChunkContext) -> None:
        for batch in _batches(chunk):
            self._convert_batch(chunk, batch, joined, context)

    def _convert_batch(self, chunk, batch: list, joined: dict, context: formats.ChunkContext) -> None:
        """Converts the rows `batch` [(line, raw)]: malformed and dropped rows counted in line order, then the rest."""
        report, encoder = context.report, self.encoder(context)
        report.read(len(batch))
        errors, heads, texts, feature_nums = {}, [], [], []
        for i, (_, raw) in enumerate(batch):
            try:
                columns = raw.decode("ascii").rstrip("\r\n").split(",")
                if len(columns) != 6:
                    raise ValueError(f"expected 6 comma-separated fields, found {len(columns)}")
                head = (
                    i,
                    values.parse_id(columns[0], "sample_id"),
                    values.parse_label(columns[1], "click"),
                    values.parse_label(columns[2], "conversion"),
                    columns[3],
                )
                feature_nums.append(values.parse_id(columns[4], "feature_num"))
            except UnicodeDecodeError as e:
                errors[i] = f"not ASCII text ({e})"
                continue
            except ValueError as e:
                errors[i] = str(e)
                continue
            heads.append(head)
            texts.append(columns[5].encode())
        entries, numbers, list_errors = parse_batch(texts, feature_nums, _IMPRESSION_FIELDS, "sample skeleton", encoder)
        for row, message in list_errors.items():
            errors[heads[row][0]] = message
        written, commons = [], []
        head_of = {head[0]: (row, head) for row, head in enumerate(heads)}
        for i, (line, _) in enumerate(batch):
            message = errors.get(i)
            if message is None:
                row, (_, _, click, conversion, key) = head_of[i]
                common = joined.get(key.encode())
                if isinstance(common, formats.JoinError):
                    message = common.message
                elif common is None:
                    report.drop(MISSING_COMMON_FEATURES)
                    continue
                elif labels_lib.admit(click, conversion, self.invalid_conversion, report):
                    written.append(row)
                    commons.append(common)
                    continue
                else:
                    continue
            context.malformed(chunk, line, message)
        if not written:
            return
        columns = encoder.columns(entries, np.array(written, np.int64), _IMPRESSION_FIELDS, numbers)
        columns += _label_columns([heads[row][1:4] for row in written])
        for k, name in enumerate(_USER_DENSE_NAMES):
            context.vocabulary.observe_numbers_column(name, np.array([c.numbers[k] for c in commons]))
        lines = [batch[heads[row][0]][0] for row in written]
        _write(context, chunk, columns, lines, [common.serialized for common in commons])


class PaddleRecFormat(_AliccpLayout, formats.ImpressionFormat):
    """PaddleRec's ESMM layout `sample_idx,click,ctcvr,field:id,field:id,...` (ids only, fields repeat)."""

    dense = False

    def convert(self, chunk, joined: dict, context: formats.ChunkContext) -> None:
        for batch in _batches(chunk):
            self._convert_batch(chunk, batch, context)

    def _convert_batch(self, chunk, batch: list, context: formats.ChunkContext) -> None:
        report, encoder = context.report, self.encoder(context)
        report.read(len(batch))
        lines: list[int] = []
        labels: list[tuple[int, int, int]] = []
        entry_rows: list[int] = []
        entry_fields: list[int] = []
        entry_ids: list[int] = []
        for line, raw in batch:
            try:
                columns = raw.decode("ascii").strip().split(",")
                if len(columns) < 3:
                    raise ValueError(f"expected sample_idx,click,ctcvr,field:id,..., found {len(columns)} fields")
                sample_id = values.parse_id(columns[0], "sample_idx")
                click = values.parse_label(columns[1], "click")
                conversion = values.parse_label(columns[2], "ctcvr")
                fields, ids = [], []
                for item in columns[3:]:
                    field, separator, feature_id = item.partition(":")
                    if not separator:
                        raise ValueError(f"feature {item!r} is not field:id")
                    if field not in _FIELD_INDEX:
                        report.count(f"unknown_field_values/{field}")
                        continue
                    fields.append(_FIELD_INDEX[field])
                    ids.append(values.parse_id(feature_id, f"field {field} id"))
            except (UnicodeDecodeError, ValueError) as e:
                context.malformed(chunk, line, str(e))
                continue
            if not labels_lib.admit(click, conversion, self.invalid_conversion, report):
                continue
            entry_rows += [len(lines)] * len(ids)
            entry_fields += fields
            entry_ids += ids
            lines.append(line)
            labels.append((sample_id, click, conversion))
        if not lines:
            return
        nothing = np.zeros(len(entry_ids), np.int64)
        entries = feature_lists.Entries(
            b"",
            np.array(entry_rows, np.int64),
            np.array(entry_fields, np.int64),
            np.array(entry_ids, np.int64),
            nothing,
            nothing,
            np.zeros(len(lines), bool),
            [],
        )
        columns = encoder.columns(entries, np.arange(len(lines)), aliccp_fields.FIELDS, np.zeros(len(entry_ids)))
        _write(context, chunk, columns + _label_columns(labels), lines)


_FIELD_INDEX = {field: index for index, field in enumerate(aliccp_fields.FIELDS)}


def _batches(chunk):
    """The chunk's (line, raw) rows in lists of `BATCH_ROWS`."""
    batch = []
    for row in chunk.lines():
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _label_columns(labels: list) -> list:
    """Columns sample_id, click and conversion of the written rows' (sample_id, click, conversion)."""
    table = np.array(labels, np.int64).reshape(len(labels), 3)
    ones = np.ones(len(labels), np.int64)
    return [example_columns.Column(name, table[:, k], ones) for k, name in enumerate(LABEL_COLUMNS)]


def _write(context: formats.ChunkContext, chunk, columns: list, lines: list, prefixes: list | None = None) -> None:
    """Encodes the written rows' columns and writes each row's record (after its prefix: the common part)."""
    buffer, offsets = example_columns.encode(columns, len(lines))
    ends, write, file_index = offsets.tolist(), context.require_router().write, chunk.file_index
    for k, line in enumerate(lines):
        record = buffer[ends[k] : ends[k + 1]]
        write(prefixes[k] + record if prefixes else record, file_index, line)
