"""CSV and Parquet impression logs -> tf.Examples: one row per impression, one column per feature.

A `TableLayout` names the label column(s) and the feature columns by kind. CSV
is read row by row with the standard `csv` module, so a malformed line is
reported with its file and line number; Parquet is read in record batches with
pyarrow (tensorflow-io's native ops do not load on TF 2.21).
"""

import csv
import dataclasses
import io
from collections.abc import Iterable, Iterator

from tfcvr.data import example_writer
from tfcvr.data import schema as schema_lib
from tfcvr.data.convert import files, values
from tfcvr.data.convert import labels as labels_lib
from tfcvr.data.convert.report import ConversionError, ConversionReport, Progress
from tfcvr.data.convert.sink import ExampleSink
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
        return values.parse_label(row[self.click], self.click), values.parse_label(
            row[self.conversion], self.conversion
        )

    def encode(self, row: dict, vocabulary: VocabularyCounter, max_list_length: int, report: ConversionReport) -> dict:
        """A row of raw cells -> the record's values; raises ValueError naming the column."""
        record = {}
        for column in self.categorical:
            record[column] = values.parse_id(row[column], column)
            vocabulary.observe(column, record[column])
        for column in self.categorical_string:
            record[column] = values.parse_string(row[column], column)
            vocabulary.observe(column, record[column])
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


def convert_rows(
    rows: Iterable[tuple[str, "dict | Dropped"]],
    layout: TableLayout,
    sink: ExampleSink,
    vocabulary: VocabularyCounter,
    report: ConversionReport,
    invalid_conversion: str = "drop",
    max_list_length: int = 64,
) -> None:
    """Validates, labels and writes (location, {column: cell}) rows; counts every outcome.

    A `Dropped` row (e.g. an item whose join found nothing) is counted under its reason.
    """
    for location, row in rows:
        report.read()
        if isinstance(row, Dropped):
            report.drop(row.reason)
            continue
        try:
            click, conversion = layout.labels(row)
            record = layout.encode(row, vocabulary, max_list_length, report)
        except ValueError as e:
            report.malformed(location, str(e))
            continue
        if not labels_lib.admit(click, conversion, invalid_conversion, report):
            continue
        record[CLICK], record[CONVERSION] = click, conversion
        sink.write(example_writer.to_example(record).SerializeToString())


@dataclasses.dataclass(frozen=True)
class Dropped:
    """A row a reader dropped by design, with the reason it is counted under."""

    reason: str


def _split_ids(cell, column: str, separator: str) -> list:
    if isinstance(cell, (list, tuple)):
        return [values.parse_id(v, column) for v in cell]
    text = "" if cell is None else str(cell).strip()
    return [values.parse_id(v, column) for v in text.split(separator)] if text else []


def csv_rows(
    path: str, layout: TableLayout, progress: Progress | None = None, delimiter: str = ","
) -> Iterator[tuple[str, dict]]:
    """(location "file:line", {column: text}) per data line of a CSV file (local or gs://)."""
    reader = csv.reader((raw.decode("utf-8") for _, raw in files.lines(path, progress)), delimiter=delimiter)
    first = next(reader, None)
    if first is None:
        return
    header = _header(path, first, layout)
    pending = [] if header is not None else [(reader.line_num, first)]
    names = header or list(layout.columns)
    missing = [c for c in layout.required_columns if c not in names]
    if missing:
        raise ConversionError(f"{path}: missing column(s) {missing}; the file has {names}.")

    def data() -> Iterator[tuple[int, list[str]]]:
        yield from pending
        for fields in reader:
            yield reader.line_num, fields

    for line, fields in data():
        location = f"{path}:{line}"
        if len(fields) != len(names):
            yield location, Invalid(f"expected {len(names)} comma-separated fields, found {len(fields)}")
            continue
        yield location, dict(zip(names, fields))


class Invalid(dict):
    """A row that could not be assembled: every lookup raises the reason, reported as malformed."""

    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def __missing__(self, key):
        raise ValueError(self.message)


def _header(path: str, first: list, layout: TableLayout):
    """The header names, or None when the file has none (layout.columns given and the first line is data)."""
    if layout.columns is None:
        return [name.strip() for name in first]
    if [name.strip() for name in first] == list(layout.columns):
        return list(layout.columns)
    return None


def parquet_rows(
    path: str, layout: TableLayout, progress: Progress | None = None, batch_size: int = 65536
) -> Iterator[tuple[str, dict]]:
    """(location "file: row n", {column: value}) per row of a Parquet file, read in batches with pyarrow."""
    import pyarrow.parquet as pq

    if files.is_local(path):
        table = pq.ParquetFile(path)
    else:
        with files.open_binary(path) as f:
            table = pq.ParquetFile(io.BytesIO(f.read()))
    names = table.schema_arrow.names
    missing = [c for c in layout.required_columns if c not in names]
    if missing:
        raise ConversionError(f"{path}: missing column(s) {missing}; the file has {names}.")
    row = 0
    for batch in table.iter_batches(batch_size=batch_size, columns=list(layout.required_columns)):
        for record in batch.to_pylist():
            row += 1
            yield f"{path}: row {row}", record
        if progress is not None:
            progress.update(row)
    if progress is not None:
        progress.update(row, force=True)


def is_parquet(path: str) -> bool:
    return path.endswith(".parquet")


def table_rows(path: str, layout: TableLayout, progress: Progress | None = None) -> Iterator[tuple[str, dict]]:
    """Rows of a .parquet file or of a CSV file (any other name)."""
    if is_parquet(path):
        return parquet_rows(path, layout, progress)
    return csv_rows(path, layout, progress)


def progress_total(path: str) -> int:
    """What `table_rows` reports progress in: rows of a Parquet file, bytes of a CSV file."""
    if is_parquet(path):
        import pyarrow.parquet as pq

        if files.is_local(path):
            return pq.ParquetFile(path).metadata.num_rows
        return 0
    return files.size(path)
