"""AliExpress raw release -> rows of the processed MTReclib layout (shared/data/FORMATS.md §2).

Per country, `{cc}_user_{split}.csv` has one row per search result page
(33 columns, `user_1` = search id) and `{cc}_item_{split}.csv` one row per
exposed item (49 columns, `item_1` = search id, `item_49` = 0 impression,
1 click, 2 purchase); neither has a header. Items are streamed and joined to
their page's user row through a `LineIndex`; columns get the processed names
(`categorical_1..16`, `numerical_1..63`, `search_id`) by MTReclib's mapping,
so raw and processed conversions give the same schema.
"""

from collections.abc import Callable, Iterator

from tfcvr.data.convert import files
from tfcvr.data.convert.line_index import LineIndex
from tfcvr.data.convert.presets import PRESETS
from tfcvr.data.convert.report import Progress
from tfcvr.data.convert.tabular import Dropped, Invalid, TableLayout

USER_COLUMNS = 33
ITEM_COLUMNS = 49
MISSING_USER_FEATURES = "missing_user_features"
LABEL = "label"

# Processed name -> (file, 1-based raw column), MTReclib data/preprocess.py.
_CATEGORICAL_SOURCES = (
    [("user", i) for i in range(2, 9)]
    + [("user", 32), ("user", 33)]
    + [("item", i) for i in (19, 34, 35, 36, 40, 41, 42)]
)
_NUMERICAL_SOURCES = [("user", i) for i in range(9, 32)] + [
    ("item", i) for i in [*range(2, 19), *range(20, 34), 37, 38, 39, *range(43, 49)]
]
COLUMN_SOURCES = {
    "search_id": ("user", 1),
    **{f"categorical_{n}": source for n, source in enumerate(_CATEGORICAL_SOURCES, start=1)},
    **{f"numerical_{n}": source for n, source in enumerate(_NUMERICAL_SOURCES, start=1)},
}

_PROCESSED = PRESETS["mtreclib-aliexpress"]
RAW_LAYOUT = TableLayout(
    funnel_label=LABEL, categorical=_PROCESSED.categorical, numeric=_PROCESSED.numeric, extra=_PROCESSED.extra
)


def raw_rows(
    item_path: str, user_path: str, progress_factory: Callable[[int], Progress] | None = None
) -> Iterator[tuple[str, dict[str, str] | Dropped]]:
    """(location, {processed column: text}) per item row joined with its search page's user row."""
    index = LineIndex(user_path, progress=progress_factory(files.size(user_path)) if progress_factory else None)
    progress = progress_factory(files.size(item_path)) if progress_factory else None
    try:
        for line_number, raw in files.lines(item_path, progress):
            yield f"{item_path}:{line_number}", _joined(raw, index, user_path)
    finally:
        index.close()


def _joined(raw: bytes, index: LineIndex, user_path: str):
    item = raw.rstrip(b"\r\n").split(b",")
    if len(item) != ITEM_COLUMNS:
        return Invalid(f"expected {ITEM_COLUMNS} comma-separated fields in an item row, found {len(item)}")
    found = index.get(item[0])
    if found is None:
        return Dropped(MISSING_USER_FEATURES)
    line_number, user_line = found
    user = user_line.split(b",")
    if len(user) != USER_COLUMNS:
        return Invalid(f"its user row {user_path}:{line_number} has {len(user)} fields, expected {USER_COLUMNS}")
    parts = {"user": user, "item": item}
    row = {name: parts[part][column - 1].decode(errors="replace") for name, (part, column) in COLUMN_SOURCES.items()}
    row[LABEL] = item[ITEM_COLUMNS - 1].decode(errors="replace")
    return row
