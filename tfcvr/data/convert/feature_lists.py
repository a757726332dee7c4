"""Ali-CCP feature lists of a batch of rows parsed at once with array operations.

A feature_list is `field\\x02id\\x03value` entries joined by `\\x01`
(Ma et al., SIGIR 2018, https://arxiv.org/abs/1804.07931; the Tianchi release's format). A
raw Ali-CCP row has ~13 entries and a common row ~500, so parsing them one
Python call at a time was most of a conversion's cost. `parse` finds the
separators, field names and int64 ids of every entry of every row of a batch
in numpy and marks the rows that break the format; `explain` says, for one
such row, which rule it breaks (the message a malformed row is reported
with). The rules:

- a row has `feature_num` entries (none when the text is empty);
- an entry is a field name, one \\x02, a decimal int64 id (`-?[0-9]+`), one
  \\x03 and a value text (parsed later, only for the fields that carry numbers).
"""

import dataclasses
import re

import numpy as np

_ENTRY, _ID, _VALUE, _ROW = 1, 2, 3, 10  # \x01 between entries, \x02 before the id, \x03 before the value, \n
_MAX_DIGITS = 19  # an int64 has at most 19 decimal digits
_INT64_MAX = 2**63 - 1
_ID_TEXT = re.compile(r"-?[0-9]+")
_MAX_DECIMAL_DIGITS = 15  # 10**15 < 2**53: such an integer is exact in a double
_POWERS_OF_TEN = np.array([float(f"1e{k}") for k in range(_MAX_DECIMAL_DIGITS + 1)])  # exact doubles


@dataclasses.dataclass
class Entries:
    """Every entry of a batch's feature lists, in row order then list order.

    Attributes:
      blob: the rows' texts joined by "\\n" (the value spans index into it).
      row: the entry's row in the batch.
      field: index of the entry's field in the `fields` given to `parse`, -1 if not one of them.
      id: the entry's id.
      value_start, value_end: byte span of the entry's value text in `blob`.
      bad_row: rows that break a rule (`explain` says which); their entries are not in the arrays.
      unknown_fields: the names of the entries with field -1, in entry order.
    """

    blob: bytes
    row: np.ndarray
    field: np.ndarray
    id: np.ndarray
    value_start: np.ndarray
    value_end: np.ndarray
    bad_row: np.ndarray
    unknown_fields: list

    def value_texts(self, selection: np.ndarray) -> list:
        """The value texts (bytes) of the entries at `selection`."""
        blob = self.blob
        return [blob[a:b] for a, b in zip(self.value_start[selection].tolist(), self.value_end[selection].tolist())]

    def values(self, selection: np.ndarray) -> np.ndarray:
        """The value texts of the entries at `selection` as Python's `float` reads them (NaN where it cannot).

        Plain decimals (`-?[0-9]*.?[0-9]*`, at most 15 digits) are read with
        array operations: all digits as one integer N < 2**53 and k digits
        after the point give N / 10**k, one correctly rounded division of
        exact numbers, which is the float `float` returns. Other texts
        (exponents, "nan", signs, spaces) go through `float` itself.
        """
        buf = np.frombuffer(self.blob, np.uint8)
        start, end = self.value_start[selection], self.value_end[selection]
        negative = (end > start) & (buf[np.minimum(start, len(buf) - 1)] == ord("-"))
        first = start + negative
        length = end - first
        ok = (length >= 1) & (length <= _MAX_DECIMAL_DIGITS + 1)
        number = np.zeros(len(start), np.int64)
        digits, after_point, points = (np.zeros(len(start), np.int64) for _ in range(3))
        for j in range(int(length[ok].max()) if ok.any() else 0):
            inside = ok & (j < length)
            char = buf[np.minimum(first + j, len(buf) - 1)]
            is_digit = inside & (char >= ord("0")) & (char <= ord("9"))
            is_point = inside & (char == ord("."))
            ok &= ~inside | is_digit | (is_point & (points == 0))
            number = np.where(is_digit, number * 10 + (char.astype(np.int64) - ord("0")), number)
            digits += is_digit
            after_point += is_digit & (points > 0)
            points += is_point
        ok &= (digits >= 1) & (digits <= _MAX_DECIMAL_DIGITS)
        parsed = number / _POWERS_OF_TEN[np.minimum(after_point, _MAX_DECIMAL_DIGITS)]
        parsed = np.where(negative, -parsed, parsed)
        others = np.flatnonzero(~ok)
        if len(others):
            parsed[others] = [_float_or_nan(text) for text in self.value_texts(selection[others])]
        return parsed


def parse(texts: list, expected_counts: np.ndarray, fields: tuple) -> Entries:
    """Parses the feature lists `texts` (bytes without newline), each expected to hold `expected_counts[i]` entries."""
    num_rows = len(texts)
    if not num_rows:
        nothing = np.zeros(0, np.int64)
        return Entries(b"", nothing, nothing, nothing, nothing, nothing, np.zeros(0, bool), [])
    blob = b"\n".join(texts)
    buf = np.frombuffer(blob + b"\n", np.uint8)
    row_end = np.flatnonzero(buf == _ROW)
    row_start = np.concatenate([[0], row_end[:-1] + 1]).astype(np.int64)
    bounds = np.flatnonzero((buf == _ENTRY) | (buf == _ROW))  # every entry ends at one of these
    starts = np.concatenate([[0], bounds[:-1] + 1]).astype(np.int64)
    ends = bounds
    row = np.searchsorted(row_end, starts)  # the rows that ended before an entry's start
    empty_row = row_end == row_start
    keep = ~empty_row[row]  # an empty row's one empty span is no entry
    starts, ends, row = starts[keep], ends[keep], row[keep]

    entries_per_row = np.bincount(row, minlength=num_rows)
    bad_row = entries_per_row != np.asarray(expected_counts, np.int64)
    # The first \x02 from an entry's start and the first \x03 after it must both fall inside the entry: with
    # one entry per \x01 this means exactly one of each, in order, in every entry.
    id_marks = np.flatnonzero(buf == _ID)
    value_marks = np.flatnonzero(buf == _VALUE)
    p2 = _first_at_or_after(id_marks, starts, len(buf))
    p3 = _first_at_or_after(value_marks, p2 + 1, len(buf))
    good = (p2 < ends) & (p3 < ends)
    # A second \x02 or \x03 inside an entry: count each mark's entry and compare with one per entry.
    bad_row |= _marks_per_row(id_marks, row_start, row_end) != entries_per_row
    bad_row |= _marks_per_row(value_marks, row_start, row_end) != entries_per_row
    ids, id_ok = _parse_ids(buf, p2 + 1, np.where(good, p3, p2 + 1))
    np.logical_or.at(bad_row, row, ~(good & id_ok))

    keep = ~bad_row[row]
    starts, ends, row, p2, p3, ids = starts[keep], ends[keep], row[keep], p2[keep], p3[keep], ids[keep]
    field, unknown = _field_indices(buf, blob, starts, p2, fields)
    return Entries(blob, row, field, ids, p3 + 1, ends, bad_row, unknown)


def explain(text: str, expected_count: int) -> str | None:
    """The first rule the feature list `text` breaks, as a message (None if it breaks none)."""
    if not text:
        return f"feature_num is {expected_count} but the feature_list has 0 features" if expected_count else None
    entries = text.split("\x01")
    if len(entries) != expected_count:
        return f"feature_num is {expected_count} but the feature_list has {len(entries)} features"
    for entry in entries:
        if entry.count("\x02") != 1 or entry.count("\x03") != 1 or entry.index("\x02") > entry.index("\x03"):
            return f"feature {entry!r} is not field\\x02id\\x03value"
    for entry in entries:
        field, _, rest = entry.partition("\x02")
        id_text = rest.partition("\x03")[0]
        if not _ID_TEXT.fullmatch(id_text):
            return f"column 'field {field} id' must hold an integer id. Received: {id_text!r}"
        if not -(2**63) <= int(id_text) <= _INT64_MAX:
            return f"column 'field {field} id': id {int(id_text)} does not fit in int64."
    return None


def _first_at_or_after(marks: np.ndarray, positions: np.ndarray, none: int) -> np.ndarray:
    """Position of the first mark at or after each position (`none` where there is none)."""
    found = np.searchsorted(marks, positions)
    return np.where(found < len(marks), marks[np.minimum(found, len(marks) - 1)] if len(marks) else none, none)


def _marks_per_row(marks: np.ndarray, row_start: np.ndarray, row_end: np.ndarray) -> np.ndarray:
    return np.searchsorted(marks, row_end) - np.searchsorted(marks, row_start)


def _parse_ids(buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int64 ids of the decimal texts buf[start:end] and whether each is one (`-?[0-9]{1,19}` within int64)."""
    negative = (end > start) & (buf[np.minimum(start, len(buf) - 1)] == ord("-"))
    first = start + negative
    digits = end - first
    ok = (digits >= 1) & (digits <= _MAX_DIGITS)
    value = np.zeros(len(start), np.uint64)
    for j in range(int(digits.max()) if len(digits) else 0):
        inside = ok & (j < digits)
        digit = buf[np.minimum(first + j, len(buf) - 1)].astype(np.int64) - ord("0")
        ok &= ~inside | ((digit >= 0) & (digit <= 9))
        value = np.where(inside & ok, value * np.uint64(10) + np.clip(digit, 0, 9).astype(np.uint64), value)
    # 19 digits reach 9999999999999999999 < 2**64 (no wrap); int64 allows up to 2**63 - 1 (2**63 when negative).
    ok &= value <= np.uint64(_INT64_MAX) + negative.astype(np.uint64)
    signed = value.view(np.int64)
    return np.where(negative, -signed, signed), ok


def _field_indices(buf: np.ndarray, blob: bytes, starts: np.ndarray, ends: np.ndarray, fields: tuple):
    """Index into `fields` of each name buf[start:end] (-1 for another name) and the other names, in order."""
    length = ends - starts
    code = length.astype(np.uint64) << np.uint64(56)
    for j in range(7):  # names of up to 7 bytes are told apart by their bytes and length; longer ones are unknown
        byte = buf[np.minimum(starts + j, len(buf) - 1)].astype(np.uint64)
        code |= np.where(j < length, byte, 0).astype(np.uint64) << np.uint64(8 * j)
    known = {}
    for index, name in enumerate(fields):
        raw = name.encode()
        if len(raw) <= 7:
            known[sum(b << (8 * j) for j, b in enumerate(raw)) | (len(raw) << 56)] = index
    codes = np.array(sorted(known), np.uint64)
    indices = np.array([known[c] for c in sorted(known)], np.int64)
    found = np.minimum(np.searchsorted(codes, code), len(codes) - 1)
    field = np.where((codes[found] == code) & (length <= 7), indices[found], -1)
    unknown = [blob[a:b].decode() for a, b in zip(starts[field < 0].tolist(), ends[field < 0].tolist())]
    return field, unknown


def _float_or_nan(text: bytes) -> float:
    try:
        return float(text)
    except ValueError:
        return np.nan
