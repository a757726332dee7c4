"""The label rule every converter applies: conversion is post-click.

(click=0, conversion=1) is declared illegal by the Ali-CCP documentation, yet
such rows occur (the PaddleRec AITM sample has them) and every public
converter drops them. tfcvr drops and counts them by default; "keep" writes
them and counts them (train on such data with the pipeline's
`invalid_conversion="drop"` or its own handling).
"""

from tfcvr.data.convert.report import ConversionReport

INVALID_CONVERSION_POLICIES = ("drop", "keep")
CONVERSION_WITHOUT_CLICK = "conversion_without_click"
KEPT_CONVERSION_WITHOUT_CLICK = "kept_conversion_without_click"


def admit(click: int, conversion: int, policy: str, report: ConversionReport) -> bool:
    """Whether a row with these labels is written; counts rows that break the rule."""
    if conversion <= click:
        return True
    if policy == "keep":
        report.count(KEPT_CONVERSION_WITHOUT_CLICK)
        return True
    report.drop(CONVERSION_WITHOUT_CLICK)
    return False


def check_policy(policy: str) -> None:
    if policy not in INVALID_CONVERSION_POLICIES:
        raise ValueError(
            f"--invalid_conversion must be one of {list(INVALID_CONVERSION_POLICIES)}. Received: {policy!r}"
        )


def funnel_labels(value: object, column: str) -> tuple[int, int]:
    """(click, conversion) from a one-column funnel label: 0 impression, 1 click, 2 click and purchase."""
    text = str(value).strip()
    if text not in ("0", "1", "2"):
        raise ValueError(
            f"label column {column!r} must be 0 (impression), 1 (click) or 2 (purchase). Received: {value!r}"
        )
    level = int(text)
    return int(level >= 1), int(level == 2)
