"""Ali-CCP -> tf.Examples: the raw Tianchi release and PaddleRec's multi-hot text layout.

Raw release (Ma et al., "Entire Space Multi-Task Model", SIGIR 2018, arXiv:1804.07931;
https://tianchi.aliyun.com/dataset/408): `sample_skeleton_*.csv` has one
impression per line, `sample_id,click,conversion,common_feature_index,
feature_num,feature_list`; `common_features_*.csv` has
`common_feature_index,feature_num,feature_list` with the user fields shared by
many impressions. A feature_list is `field\\x02id\\x03value` entries joined by
`\\x01`. The skeleton is converted in chunks; each common row that an
impression refers to is parsed and serialized once (`RawFormat.prepare`; its
truncated lists and unknown fields are counted once, and its categorical
values enter the vocabulary whether or not its impressions are written), and
the runner hands each chunk the parts of the keys it needs.

A record is the serialized common part followed by the serialized impression
part: two concatenated `tf.train.Example` messages are one Example whose
feature map is the union (protobuf merges repeated embedded messages), so the
long user part is serialized once per user rather than once per impression.

Fields (`aliccp_fields`): with `single_value="list"` the multi-valued fields
become categorical_list features (the first `max_list_length` ids in file
order; the rest counted as truncated), the others categorical; with "last" or
"first" every field keeps one id, the last (what torch-rechub, PaddleRec AITM
and Merlin keep) or the first occurrence. An absent single-valued field is the
id -1; an absent list is empty. The dense fields' values become numeric
features `D<field>`: the kept occurrence's value, or with lists the mean of all
of the field's values; 0 when absent. Values of fields outside the 23 are
counted and not written.
"""

import dataclasses
import math
import re
from collections.abc import Iterable

from tfcvr.data import example_writer
from tfcvr.data import schema as schema_lib
from tfcvr.data.convert import aliccp_fields, formats, values
from tfcvr.data.convert import labels as labels_lib
from tfcvr.data.convert.report import ConversionReport

SINGLE_VALUE_POLICIES = ("list", "last", "first")
MISSING_ID = -1
MISSING_COMMON_FEATURES = "missing_common_features"
COMMON_FEATURE_ROWS = "common_feature_rows"
GROUP_KEY = "101"  # the user id: GAUC groups by user


def features(single_value: str = "list", dense: bool = True) -> list:
    """Schema features of a conversion (bucket sizes and list lengths still to be measured)."""
    _check_single_value(single_value)
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


class FieldEncoder:
    """Parsed ids and values of one file part -> record values, by the policy.

    Args:
      single_value: "list", "last" or "first" (module docstring); single-valued
        fields that occur several times keep the last occurrence unless "first".
      max_list_length: ids kept per categorical_list.
      vocabulary: a `VocabularyCounter` that sees every id written.
      report: counts truncated list values.
      dense: also write the dense fields' values as numeric `D<field>`.
    """

    def __init__(self, single_value: str, max_list_length: int, vocabulary, report, dense: bool = True):
        _check_single_value(single_value)
        if max_list_length < 1:
            raise ValueError(f"--max_list_length must be positive. Received: {max_list_length}")
        self.max_list_length = max_list_length
        self.vocabulary = vocabulary
        self.report = report
        self._pick = 0 if single_value == "first" else -1
        self._plan = {
            field: (
                single_value == "list" and field in aliccp_fields.MULTI_VALUED,
                aliccp_fields.dense_name(field) if dense and field in aliccp_fields.DENSE else None,
            )
            for field in aliccp_fields.FIELDS
        }
        self._steps = {}

    def _steps_of(self, home_fields: tuple) -> tuple:
        """(field, dense name or None, the vocabulary's value adder or None for a list) per home field."""
        steps = self._steps.get(home_fields)
        if steps is None:
            steps = self._steps[home_fields] = tuple(
                (field, dense_name, None if is_list else self.vocabulary.value_adder(field))
                for field in home_fields
                for is_list, dense_name in (self._plan[field],)
            )
        return steps

    def record(self, ids_by_field: dict, values_by_field: dict, home_fields: Iterable[str]) -> dict:
        """Values of `home_fields` (absent ones get their default).

        `ids_by_field`: {field: [int id, ...]}; `values_by_field`: {field:
        [value text, ...]} of the dense fields (parsed here, so only the values
        that are written are read).
        """
        record = {}
        limit, pick = self.max_list_length, self._pick
        # Runs once per impression: the per-field plan and the vocabulary's set methods are looked up once.
        for field, dense_name, add_value in self._steps_of(tuple(home_fields)):
            ids = ids_by_field.get(field)
            if add_value is None:  # a categorical_list
                if ids is None:
                    ids = []
                elif len(ids) > limit:
                    self.report.count(f"list_values_truncated/{field}", len(ids) - limit)
                    ids = ids[:limit]
                record[field] = ids
                self.vocabulary.observe(field, ids)
            else:
                record[field] = value = ids[pick] if ids else MISSING_ID
                add_value(value)
            if dense_name is not None:
                texts = values_by_field.get(field)
                if not texts:
                    record[dense_name] = 0.0
                elif add_value is None:
                    record[dense_name] = _mean(texts, field)
                else:
                    record[dense_name] = values.parse_float(texts[pick], f"field {field} value")
        return record


def _mean(texts: list, field: str) -> float:
    """The mean of a list field's value texts, each a finite number (`values.parse_float`'s rule)."""
    try:
        total = sum(map(float, texts))
    except ValueError:
        total = math.nan
    if not math.isfinite(total):  # one text is not a finite number (or the sum overflowed): name it
        for text in texts:
            values.parse_float(text, f"field {field} value")
    return total / len(texts)


def _check_single_value(single_value: str) -> None:
    if single_value not in SINGLE_VALUE_POLICIES:
        raise ValueError(f"--single_value must be one of {list(SINGLE_VALUE_POLICIES)}. Received: {single_value!r}")


def parse_feature_list(
    text: str, expected_count: int, report: ConversionReport
) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """`field\\x02id\\x03value` entries joined by \\x01 -> ({field: [id]}, {dense field: [value text]}).

    Raises ValueError (naming the feature) if the list is malformed or an id is
    not an int64.
    """
    if not text:
        if expected_count:
            raise ValueError(f"feature_num is {expected_count} but the feature_list has 0 features")
        return {}, {}
    found = text.count("\x01") + 1
    if found != expected_count:
        raise ValueError(f"feature_num is {expected_count} but the feature_list has {found} features")
    if text.count("\x02") != found or text.count("\x03") != found:
        bad = next(p for p in text.split("\x01") if p.count("\x02") != 1 or p.count("\x03") != 1)
        raise ValueError(f"feature {bad!r} is not field\\x02id\\x03value")
    # One split for all entries: [field, id, value, field, id, value, ...]; several times faster than per entry.
    parts = _SEPARATORS.split(text)
    fields = parts[0::3]
    try:
        ids = list(map(int, parts[1::3]))
    except ValueError:
        for field, feature_id in zip(fields, parts[1::3]):
            values.parse_id(feature_id, f"field {field} id")
        raise
    if not (_INT64_MIN <= min(ids) and max(ids) <= _INT64_MAX):
        for field, feature_id in zip(fields, ids):
            values.parse_id(feature_id, f"field {field} id")
    ids_by_field = _grouped(fields, ids)
    if not _KNOWN_FIELDS.issuperset(ids_by_field):
        for field in [f for f in ids_by_field if f not in _KNOWN_FIELDS]:  # first-seen order
            report.count(f"unknown_field_values/{field}", len(ids_by_field.pop(field)))
    values_by_field = {}
    if not _DENSE.isdisjoint(ids_by_field):  # the value texts only of the fields that carry numbers
        values_by_field = {f: texts for f, texts in _grouped(fields, parts[2::3]).items() if f in _DENSE}
    return ids_by_field, values_by_field


def _grouped(fields: list, items: list) -> dict:
    """{field: [its items, in list order]} of parallel lists, fields in first-seen order."""
    grouped = {}
    for field, item in zip(fields, items):
        bucket = grouped.get(field)
        if bucket is None:
            grouped[field] = [item]
        else:
            bucket.append(item)
    return grouped


_SEPARATORS = re.compile("[\x01\x02\x03]")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_KNOWN_FIELDS = frozenset(aliccp_fields.FIELDS)
_DENSE = frozenset(aliccp_fields.DENSE)
_USER = frozenset(aliccp_fields.USER_FIELDS)
_IMPRESSION_FIELDS = tuple(f for f in aliccp_fields.FIELDS if f not in _USER)
_IMPRESSION_FIELD_SET = frozenset(_IMPRESSION_FIELDS)
_USER_DENSE_NAMES = tuple(aliccp_fields.dense_name(f) for f in aliccp_fields.USER_FIELDS if f in _DENSE)
_IMPRESSION_DENSE_NAMES = tuple(aliccp_fields.dense_name(f) for f in _IMPRESSION_FIELDS if f in _DENSE)


def _check_placement(entries: dict, allowed: frozenset, where: str) -> None:
    if not allowed.issuperset(entries):
        wrong = sorted(set(entries) - allowed)
        raise ValueError(f"field(s) {wrong} in the {where}; expected only {sorted(allowed)} there")


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
      single_value, max_list_length, invalid_conversion: the policies (`FieldEncoder`, `labels`).
    """

    group_key = GROUP_KEY
    dense = True  # whether the layout carries feature values (numeric `D<field>` features)

    def __init__(self, paths, single_value="list", max_list_length=64, invalid_conversion="drop"):
        labels_lib.check_policy(invalid_conversion)
        self.features = tuple(features(single_value, dense=self.dense))
        self.main_files = tuple(paths)
        self.single_value = single_value
        self.max_list_length = max_list_length
        self.invalid_conversion = invalid_conversion

    def encoder(self, context: formats.ChunkContext) -> FieldEncoder:
        return FieldEncoder(
            self.single_value, self.max_list_length, context.vocabulary, context.report, dense=self.dense
        )


class RawFormat(_AliccpLayout, formats.JoinedFormat):
    """The raw release: skeleton lines joined with their common features by common_feature_index.

    Args:
      skeleton, common: the two files of one split (local or gs://); the
        skeleton may be several files (in order).
      single_value, max_list_length, invalid_conversion: the policies (`FieldEncoder`, `labels`).
    """

    joined_rows_note = COMMON_FEATURE_ROWS

    def __init__(self, skeleton, common: str, single_value="list", max_list_length=64, invalid_conversion="drop"):
        super().__init__(skeleton, single_value, max_list_length, invalid_conversion)
        self.joined_file = common

    def needed_key(self, raw: bytes) -> bytes | None:
        columns = raw.split(b",", 4)
        return columns[3] if len(columns) == 5 else None

    def prepare(self, raw: bytes, location: str, context: formats.ChunkContext):
        """The user part of a common row; a malformed row becomes a `JoinError` naming `location`."""
        try:
            columns = raw.decode("ascii").split(",")
            if len(columns) != 3:
                raise ValueError(f"expected 3 comma-separated fields, found {len(columns)}")
            ids, dense_values = parse_feature_list(
                columns[2], values.parse_id(columns[1], "feature_num"), context.report
            )
            _check_placement(ids, _USER, "common features")
            record = self.encoder(context).record(ids, dense_values, aliccp_fields.USER_FIELDS)
        except (UnicodeDecodeError, ValueError) as e:
            return formats.JoinError(f"its common features ({location}) are malformed: {e}")
        return CommonPart(example_writer.serialize(record), tuple(record[name] for name in _USER_DENSE_NAMES))

    def convert(self, chunk, joined: dict, context: formats.ChunkContext) -> None:
        encoder = self.encoder(context)
        report, vocabulary, write = context.report, context.vocabulary, context.router.write
        impression_numbers = [(name, vocabulary.number_appender(name)) for name in _IMPRESSION_DENSE_NAMES]
        user_numbers = [vocabulary.number_appender(name) for name in _USER_DENSE_NAMES]
        for line, raw in chunk.lines():
            report.read()
            record = None
            try:
                columns = raw.decode("ascii").rstrip("\r\n").split(",")
                if len(columns) != 6:
                    raise ValueError(f"expected 6 comma-separated fields, found {len(columns)}")
                sample_id = values.parse_id(columns[0], "sample_id")
                click = values.parse_label(columns[1], "click")
                conversion = values.parse_label(columns[2], "conversion")
                feature_num = values.parse_id(columns[4], "feature_num")
                ids, dense_values = parse_feature_list(columns[5], feature_num, report)
                _check_placement(ids, _IMPRESSION_FIELD_SET, "sample skeleton")
                common = joined.get(columns[3].encode())
                if isinstance(common, formats.JoinError):
                    raise ValueError(common.message)
                if common is not None and labels_lib.admit(click, conversion, self.invalid_conversion, report):
                    record = encoder.record(ids, dense_values, _IMPRESSION_FIELDS)
            except UnicodeDecodeError as e:
                context.malformed(chunk, line, f"not ASCII text ({e})")
                continue
            except ValueError as e:
                context.malformed(chunk, line, str(e))
                continue
            if common is None:
                report.drop(MISSING_COMMON_FEATURES)
                continue
            if record is None:  # dropped by the label rule
                continue
            record.update(sample_id=sample_id, click=click, conversion=conversion)
            for name, append in impression_numbers:
                append(record[name])
            for append, value in zip(user_numbers, common.numbers):
                append(value)
            write(common.serialized + example_writer.serialize(record), chunk.file_index, line)


class PaddleRecFormat(_AliccpLayout, formats.ImpressionFormat):
    """PaddleRec's ESMM layout `sample_idx,click,ctcvr,field:id,field:id,...` (ids only, fields repeat)."""

    dense = False

    def convert(self, chunk, joined: dict, context: formats.ChunkContext) -> None:
        encoder = self.encoder(context)
        for line, raw in chunk.lines():
            context.report.read()
            try:
                columns = raw.decode("ascii").strip().split(",")
                if len(columns) < 3:
                    raise ValueError(f"expected sample_idx,click,ctcvr,field:id,..., found {len(columns)} fields")
                sample_id = values.parse_id(columns[0], "sample_idx")
                click = values.parse_label(columns[1], "click")
                conversion = values.parse_label(columns[2], "ctcvr")
                ids = {}
                for item in columns[3:]:
                    field, separator, feature_id = item.partition(":")
                    if not separator:
                        raise ValueError(f"feature {item!r} is not field:id")
                    if field not in _KNOWN_FIELDS:
                        context.report.count(f"unknown_field_values/{field}")
                        continue
                    ids.setdefault(field, []).append(values.parse_id(feature_id, f"field {field} id"))
                if not labels_lib.admit(click, conversion, self.invalid_conversion, context.report):
                    continue
                record = encoder.record(ids, {}, aliccp_fields.FIELDS)
            except (UnicodeDecodeError, ValueError) as e:
                context.malformed(chunk, line, str(e))
                continue
            record.update(sample_id=sample_id, click=click, conversion=conversion)
            context.router.write(example_writer.serialize(record), chunk.file_index, line)
