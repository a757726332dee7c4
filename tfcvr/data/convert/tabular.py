"""CSV and Parquet impression logs -> tf.Examples: one row per impression, one column per feature.

A `TableLayout` names the label column(s) and the feature columns by kind. CSV
lines are parsed one by one with the standard `csv` module, so a malformed line
is reported with its file and line number; Parquet is read in record batches of
its row groups with pyarrow (tensorflow-io's native ops do not load on TF 2.21).
"""

import csv
import dataclasses
from collections.abc import Iterator

from tfcvr import optional
from tfcvr.data import example_writer
from tfcvr.data import schema as schema_lib
from tfcvr.data.convert import files, formats, values
from tfcvr.data.convert import labels as labels_lib
from tfcvr.data.convert.chunks import PARQUET, PARQUET_FEATURE, is_parquet
from tfcvr.data.convert.report import ConversionError, ConversionReport
from tfcvr.data.convert.vocabulary import VocabularyCounter

CLICK, CONVERSION = "click", "conversion"


@dataclasses.dataclass(frozen=True)
class TableLayout:
    """Which columns hold what.

    Attributes:
      click, conversion: the two 0/1 label columns; or
      funnel_label: one column with 0 (impression), 1 (click), 2 (purchase).
      categorical: int64 id columns; categorical_string: string id columns.
      lists: columns holding several int64 ids joined by `list_separator`
        (written as categorical_list features).
      numeric: float columns.
      extra: int64 columns written into the records but not features (e.g.
        AliExpress's search_id, for grouped evaluation).
      columns: the column names of files without a header line; a first line
        equal to them is taken as a header and skipped.
    """

    click: str | None = None
    conversion: str | None = None
    funnel_label: str | None = None
    categorical: tuple = ()
    categorical_string: tuple = ()
    lists: tuple = ()
    numeric: tuple = ()
    extra: tuple = ()
    columns: tuple | None = None
    list_separator: str = "|"

    def __post_init__(self):
        if (self.funnel_label is None) == (self.click is None or self.conversion is None):
            raise ValueError(
                "Give either both label columns (--label_click and --label_conversion) "
                "or one funnel label column (--label_funnel)."
            )
        named = self.feature_columns + self.extra + self.label_columns
        duplicates = sorted({c for c in named if named.count(c) > 1})
        if duplicates:
            raise ValueError(f"Column(s) {duplicates} are named more than once in the layout.")
        clashes = sorted(set(self.feature_columns + self.extra) & {CLICK, CONVERSION} - set(self.label_columns))
        if clashes:
            raise ValueError(f"Column(s) {clashes} would overwrite the output label keys {CLICK!r}/{CONVERSION!r}.")
        if not self.feature_columns:
            raise ValueError("The layout names no feature column (--categorical, --numeric, ...).")

    @property
    def label_columns(self) -> tuple:
        return (self.funnel_label,) if self.funnel_label else (self.click, self.conversion)

    @property
    def feature_columns(self) -> tuple:
        return self.categorical + self.categorical_string + self.lists + self.numeric

    @property
    def required_columns(self) -> tuple:
        return self.label_columns + self.feature_columns + self.extra

    def features(self) -> list:
        """The schema features written (bucket sizes and list lengths still to be measured)."""
        kinds = (
            [(c, schema_lib.CATEGORICAL, "int64") for c in self.categorical]
            + [(c, schema_lib.CATEGORICAL, "string") for c in self.categorical_string]
            + [(c, schema_lib.CATEGORICAL_LIST, "int64") for c in self.lists]
            + [(c, schema_lib.NUMERIC, "float32") for c in self.numeric]
        )
        return [schema_lib.Feature(name=n, type=t, dtype=d) for n, t, d in kinds]

    def labels(self, row: dict) -> tuple[int, int]:
        if self.funnel_label:
            return labels_lib.funnel_labels(row[self.funnel_label], self.funnel_label)
        click, conversion = self.click, self.conversion
        if click is None or conversion is None:
            raise TypeError(
                "A layout without a funnel label column needs both label columns. "
                f"Received: click={click!r}, conversion={conversion!r}"
            )
        return values.parse_label(row[click], click), values.parse_label(row[conversion], conversion)

    def encode(self, row: dict, vocabulary: VocabularyCounter, max_list_length: int, report: ConversionReport) -> dict:
        """A row of raw cells -> the record's values; raises ValueError naming the column."""
        record: dict[str, int | str | list[int] | float] = {}
        for column in self.categorical:
            record[column] = number = values.parse_id(row[column], column)
            vocabulary.observe(column, number)
        for column in self.categorical_string:
            record[column] = text = values.parse_string(row[column], column)
            vocabulary.observe(column, text)
        for column in self.lists:
            ids = _split_ids(row[column], column, self.list_separator)
            if len(ids) > max_list_length:
                report.count(f"list_values_truncated/{column}", len(ids) - max_list_length)
                ids = ids[:max_list_length]
            record[column] = ids
            vocabulary.observe(column, ids)
        for column in self.numeric:
            record[column] = values.parse_float(row[column], column)
        for column in self.extra:
            record[column] = values.parse_id(row[column], column)
        return record


class TableFormat(formats.ImpressionFormat):
    """CSV or Parquet files of one layout (a file named *.parquet is Parquet, any other CSV).

    CSV files are cut into line chunks, so a quoted field may not span lines
    (such a line is reported as malformed); Parquet files into row groups.

    Args:
      paths: the files (in order).
      layout: the `TableLayout`.
      invalid_conversion, max_list_length: the policies.
      group_key: schema group_key.
    """

    def __init__(self, paths, layout: TableLayout, invalid_conversion="drop", max_list_length=64, group_key=None):
        labels_lib.check_policy(invalid_conversion)
        if max_list_length < 1:
            raise ValueError(f"--max_list_length must be positive. Received: {max_list_length}")
        self.main_files = tuple(paths)
        self.layout = layout
        self.features = tuple(layout.features())
        self.invalid_conversion = invalid_conversion
        self.max_list_length = max_list_length
        self.group_key = group_key

    def check_inputs(self) -> None:
        for path in self.main_files:
            if not is_parquet(path) and files.size(path) == 0:
                continue  # an empty part file of a glob has no rows to check
            names = _parquet_names(path) if is_parquet(path) else _csv_names(path, self.layout)
            missing = [c for c in self.layout.required_columns if c not in names]
            if missing:
                raise ConversionError(f"{path}: missing column(s) {missing}; the file has {names}.")

    def convert(self, chunk, joined: dict, context: formats.ChunkContext) -> None:
        rows = _parquet_rows(chunk, self.layout) if chunk.kind == PARQUET else _csv_rows(chunk, self.layout)
        for line, row in rows:
            convert_row(row, chunk, line, self, context)


def convert_row(row, chunk, line: int, settings, context: formats.ChunkContext) -> None:
    """Validates, labels and writes one {column: cell} row; counts every outcome.

    `row` may be a `Dropped` (counted under its reason) or an `Invalid`
    (reported as malformed). `settings` has `layout`, `invalid_conversion`
    and `max_list_length`.
    """
    context.report.read()
    if isinstance(row, Dropped):
        context.report.drop(row.reason)
        return
    layout = settings.layout
    try:
        click, conversion = layout.labels(row)
        record = layout.encode(row, context.vocabulary, settings.max_list_length, context.report)
    except ValueError as e:
        context.malformed(chunk, line, str(e))
        return
    if not labels_lib.admit(click, conversion, settings.invalid_conversion, context.report):
        return
    record[CLICK], record[CONVERSION] = click, conversion
    context.vocabulary.observe_numbers(record)
    context.require_router().write(example_writer.serialize(record), chunk.file_index, line)


@dataclasses.dataclass(frozen=True)
class Dropped:
    """A row a reader dropped by design, with the reason it is counted under."""

    reason: str


def _split_ids(cell, column: str, separator: str) -> list[int]:
    if isinstance(cell, (list, tuple)):
        return [values.parse_id(v, column) for v in cell]
    text = "" if cell is None else str(cell).strip()
    return [values.parse_id(v, column) for v in text.split(separator)] if text else []


def _csv_rows(chunk, layout: TableLayout) -> Iterator[tuple[int, dict]]:
    """(line, {column: text}) per data line of a CSV chunk (the header line, if any, is skipped)."""
    names = _csv_names(chunk.path, layout)
    has_header = _first_line_is_header(chunk.path, layout)
    for line, raw in chunk.lines():
        if line == 1 and has_header:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield line, Invalid(f"not UTF-8 text ({e})")
            continue
        if text.count('"') % 2:
            yield line, Invalid("a quoted field spans lines (or its quotes are unbalanced); quote fields on one line")
            continue
        fields = next(csv.reader([text]), [])
        if len(fields) != len(names):
            yield line, Invalid(f"expected {len(names)} comma-separated fields, found {len(fields)}")
            continue
        yield line, dict(zip(names, fields))


class Invalid(dict):
    """A row that could not be assembled: every lookup raises the reason, reported as malformed."""

    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def __missing__(self, key):
        raise ValueError(self.message)


def _first_fields(path: str) -> list:
    with files.open_binary(path) as f:
        first = f.readline().decode("utf-8")
    return [name.strip() for name in next(csv.reader([first]), [])]


def _first_line_is_header(path: str, layout: TableLayout) -> bool:
    return layout.columns is None or _first_fields(path) == list(layout.columns)


def _csv_names(path: str, layout: TableLayout) -> list:
    """The column names: the header line's, or the layout's for a file without one."""
    return _first_fields(path) if layout.columns is None else list(layout.columns)


def _parquet_names(path: str) -> list:
    pq = optional.require("pyarrow.parquet", PARQUET_FEATURE)

    with files.open_binary(path) as f:  # pyarrow reads the footer only (ranged reads on gs://)
        return pq.ParquetFile(f).schema_arrow.names


def _parquet_rows(chunk, layout: TableLayout, batch_size: int = 65536) -> Iterator[tuple[int, dict]]:
    """(row number, {column: value}) per row of a chunk's row groups, read in batches with pyarrow."""
    pq = optional.require("pyarrow.parquet", PARQUET_FEATURE)

    groups = list(range(chunk.start, chunk.end))
    if not groups:
        return
    row = chunk.first_line
    with files.open_binary(chunk.path) as f:  # only this chunk's row groups are read
        table = pq.ParquetFile(f)
        columns = list(layout.required_columns)
        for batch in table.iter_batches(batch_size=batch_size, row_groups=groups, columns=columns):
            for record in batch.to_pylist():
                yield row, record
                row += 1
