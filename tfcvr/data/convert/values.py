"""Strict parsing of one cell: labels, int64 ids, finite floats.

Each parser raises `ValueError` naming the column and the expected value, which
the converters turn into a malformed-line record with file and line number.
"""

import math
from typing import SupportsFloat, SupportsIndex

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# What float() converts: text (str or bytes-like) or an object with __float__ or __index__. The concrete types come
# first: isinstance against the protocols is slow, and float cells are parsed one by one.
_FLOAT_CONVERTIBLE = (str, float, int, bytes, bytearray, memoryview, SupportsFloat, SupportsIndex)
_LABEL_TEXTS = {"0": 0, "1": 1}


def parse_label(value: object, column: str) -> int:
    """0 or 1 (also given as "0"/"1", 0.0/1.0 or True/False)."""
    if type(value) is str:  # the text as converters read it: one lookup per label of millions of rows
        label = _LABEL_TEXTS.get(value)
        if label is not None:
            return label
    if isinstance(value, str):
        value = value.strip()
        if value in ("0", "1"):
            return int(value)
        if value in ("0.0", "1.0"):
            return int(float(value))
    elif isinstance(value, (bool, int, float)) and value in (0, 1):
        return int(value)
    raise ValueError(f"label column {column!r} must be 0 or 1. Received: {value!r}")


def parse_id(value: object, column: str) -> int:
    """An int64 id, from an int or its decimal text."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"column {column!r} must hold an integer id. Received: {value!r}")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"column {column!r} must hold an integer id. Received: {value!r}") from None
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ValueError(f"column {column!r}: id {number} does not fit in int64.")
    return number


def parse_string(value: object, column: str) -> str:
    if value is None:
        raise ValueError(f"column {column!r} must hold a value. Received: None")
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_float(value: object, column: str) -> float:
    """A finite float, from a number or its text."""
    if isinstance(value, bool) or not isinstance(value, _FLOAT_CONVERTIBLE):  # None included
        raise ValueError(f"column {column!r} must hold a finite number. Received: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"column {column!r} must hold a finite number. Received: {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"column {column!r} must hold a finite number. Received: {value!r}")
    return number
