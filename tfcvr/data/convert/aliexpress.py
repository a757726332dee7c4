"""AliExpress raw release -> rows of the processed MTReclib layout (https://tianchi.aliyun.com/dataset/74690).

Per country, `{cc}_user_{split}.csv` has one row per search result page
(33 columns, `user_1` = search id) and `{cc}_item_{split}.csv` one row per
exposed item (49 columns, `item_1` = search id, `item_49` = 0 impression,
1 click, 2 purchase); neither has a header. Item rows are joined to their
page's user row by search id (`RawFormat`); columns get the processed names
(`categorical_1..16`, `numerical_1..63`, `search_id`) by MTReclib's mapping,
so raw and processed conversions give the same schema.
"""

from tfcvr.data.convert import formats
from tfcvr.data.convert import labels as labels_lib
from tfcvr.data.convert.presets import PRESETS
from tfcvr.data.convert.tabular import Dropped, Invalid, TableLayout, convert_row

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


class RawFormat(formats.JoinedFormat):
    """Item rows joined with their search page's user row, as rows of the processed layout.

    Args:
      item: the item file(s) (in order); user: the user file of the same split.
      invalid_conversion, max_list_length: the policies.
    """

    joined_rows_note = "user_rows"
    layout = RAW_LAYOUT

    def __init__(self, item, user: str, invalid_conversion="drop", max_list_length=64):
        labels_lib.check_policy(invalid_conversion)
        self.main_files = tuple(item)
        self.joined_file = user
        self.features = tuple(RAW_LAYOUT.features())
        self.invalid_conversion = invalid_conversion
        self.max_list_length = max_list_length

    def needed_key(self, raw: bytes) -> bytes | None:
        return raw.split(b",", 1)[0]

    def prepare(self, rows: list, context: formats.ChunkContext) -> list:
        return [_user_part(location, raw) for location, raw in rows]

    def convert(self, chunk, joined: dict, context: formats.ChunkContext) -> None:
        for line, raw in chunk.lines():
            convert_row(_joined(raw, joined), chunk, line, self, context)


def _user_part(location: str, raw: bytes):
    user = raw.split(b",")
    if len(user) != USER_COLUMNS:
        return formats.JoinError(f"its user row {location} has {len(user)} fields, expected {USER_COLUMNS}")
    return user


def _joined(raw: bytes, joined: dict):
    item = raw.rstrip(b"\r\n").split(b",")
    if len(item) != ITEM_COLUMNS:
        return Invalid(f"expected {ITEM_COLUMNS} comma-separated fields in an item row, found {len(item)}")
    user = joined.get(item[0])
    if user is None:
        return Dropped(MISSING_USER_FEATURES)
    if isinstance(user, formats.JoinError):
        return Invalid(user.message)
    parts = {"user": user, "item": item}
    row = {name: parts[part][column - 1].decode(errors="replace") for name, (part, column) in COLUMN_SOURCES.items()}
    row[LABEL] = item[ITEM_COLUMNS - 1].decode(errors="replace")
    return row
