"""Ali-CCP fields of a batch of rows -> columns of record values, by the single-value policy.

With `single_value="list"` the multi-valued fields become categorical_list
features (the first `max_list_length` ids in file order; the rest counted as
truncated), the others categorical; with "last" or "first" every field keeps
one id, the last (what torch-rechub, PaddleRec AITM and Merlin keep) or the
first occurrence. An absent single-valued field is the id -1; an absent list
is empty. The dense fields' values become numeric features `D<field>`: the
kept occurrence's value, or with lists the mean of all of the field's values
(summed in list order); 0 when absent.
"""

import numpy as np

from tfcvr.data.convert import aliccp_fields, values
from tfcvr.data.convert.feature_lists import Entries
from tfcvr.data.example_columns import Column

SINGLE_VALUE_POLICIES = ("list", "last", "first")
MISSING_ID = -1


def check_single_value(single_value: str) -> None:
    if single_value not in SINGLE_VALUE_POLICIES:
        raise ValueError(f"--single_value must be one of {list(SINGLE_VALUE_POLICIES)}. Received: {single_value!r}")


class FieldEncoder:
    """Parsed entries of a batch -> `example_columns.Column`s of the written rows, counting what it keeps.

    Args:
      single_value: "list", "last" or "first" (module docstring).
      max_list_length: ids kept per categorical_list.
      vocabulary: a `VocabularyCounter` that sees every value written.
      report: counts truncated list values.
      dense: also write the dense fields' values as numeric `D<field>`.
    """

    def __init__(self, single_value: str, max_list_length: int, vocabulary, report, dense: bool = True):
        check_single_value(single_value)
        if max_list_length < 1:
            raise ValueError(f"--max_list_length must be positive. Received: {max_list_length}")
        self.single_value = single_value
        self.max_list_length = max_list_length
        self.vocabulary = vocabulary
        self.report = report
        self.dense = dense

    def _plan(self, field: str) -> tuple[bool, str | None]:
        """(written as a list, dense feature name or None) of one field."""
        is_list = self.single_value == "list" and field in aliccp_fields.MULTI_VALUED
        dense_name = aliccp_fields.dense_name(field) if self.dense and field in aliccp_fields.DENSE else None
        return is_list, dense_name

    def numbers(self, entries: Entries, home_fields: tuple) -> tuple[np.ndarray, dict]:
        """The dense fields' values each row uses, parsed: (value per entry, NaN if unused; {row: error}).

        A list field uses every value (their mean), a single-valued field
        only its kept occurrence's. A value that is not a finite number makes
        its row malformed; the error names the first such value in field,
        then list, order.
        """
        numbers = np.full(len(entries.row), np.nan)
        errors = {}
        for field in home_fields:
            is_list, dense_name = self._plan(field)
            if dense_name is None:
                continue
            used = self._selection(entries, field)
            if not is_list:
                used = used[self._kept(entries.row[used])]
            parsed = entries.values(used)
            numbers[used] = parsed
            bad = used[~np.isfinite(parsed)]
            for row, text in zip(entries.row[bad].tolist(), entries.value_texts(bad)):
                if row not in errors:
                    errors[row] = _value_error(text, field)
        return numbers, errors

    def columns(self, entries: Entries, rows: np.ndarray, home_fields: tuple, numbers: np.ndarray) -> list[Column]:
        """The columns of `home_fields` for the batch rows `rows` (ascending), in that order; counts what it keeps."""
        position = np.full(len(entries.bad_row), -1, np.int64)
        position[rows] = np.arange(len(rows))
        num_rows = len(rows)
        columns = []
        for field in home_fields:
            is_list, dense_name = self._plan(field)
            used = self._selection(entries, field)
            used = used[position[entries.row[used]] >= 0]
            row = position[entries.row[used]]
            counts = np.bincount(row, minlength=num_rows)
            if is_list:
                rank = np.arange(len(used)) - np.repeat(np.cumsum(counts) - counts, counts)
                lengths = np.minimum(counts, self.max_list_length)
                truncated = int((counts - lengths).sum())
                if truncated:
                    self.report.count(f"list_values_truncated/{field}", truncated)
                ids = entries.id[used[rank < self.max_list_length]]
                self.vocabulary.observe_column(field, ids, lengths)
                columns.append(Column(field, ids, lengths))
            else:
                kept = used[self._kept(entries.row[used])]
                ids = np.full(num_rows, MISSING_ID, np.int64)
                ids[position[entries.row[kept]]] = entries.id[kept]
                self.vocabulary.observe_column(field, ids)
                columns.append(Column(field, ids, np.ones(num_rows, np.int64)))
            if dense_name is not None:
                if is_list:
                    sums = np.bincount(row, weights=numbers[used], minlength=num_rows)
                    dense = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
                else:
                    dense = np.zeros(num_rows)
                    dense[position[entries.row[kept]]] = numbers[kept]
                self.vocabulary.observe_numbers_column(dense_name, dense)
                columns.append(Column(dense_name, dense, np.ones(num_rows, np.int64)))
        return columns

    def _kept(self, rows: np.ndarray) -> np.ndarray:
        """Mask of the kept occurrence (first or last) of each row among `rows` (entries of one field, in order)."""
        if self.single_value == "first":
            return np.concatenate([[True], rows[1:] != rows[:-1]])[: len(rows)]
        return np.concatenate([rows[1:] != rows[:-1], [True]])[-len(rows) :] if len(rows) else np.zeros(0, bool)

    @staticmethod
    def _selection(entries: Entries, field: str) -> np.ndarray:
        return np.flatnonzero(entries.field == aliccp_fields.FIELDS.index(field))


def _value_error(text: bytes, field: str) -> str:
    try:
        values.parse_float(text.decode(), f"field {field} value")
    except ValueError as e:
        return str(e)
    raise RuntimeError(f"field {field} value {text!r} was refused but parses")  # a bug, not the data
