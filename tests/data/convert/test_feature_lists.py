import random
import re

import numpy as np
import pytest

from tfcvr.data.convert import feature_lists

FIELDS = ("101", "205", "150_14", "210")


def _entry(field, feature_id, value="1.0"):
    return f"{field}\x02{feature_id}\x03{value}"


def _parse(texts, counts=None):
    counts = [t.count("\x01") + 1 if t else 0 for t in texts] if counts is None else counts
    return feature_lists.parse([t.encode() for t in texts], np.array(counts), FIELDS)


def test_entries_of_good_rows_in_order_with_their_fields_ids_and_values():
    texts = [
        "\x01".join([_entry("205", 7, "0.5"), _entry("210", 1), _entry("210", 2), _entry("999", 3)]),
        "",
        _entry("150_14", -(2**63), "x"),
    ]
    entries = _parse(texts)
    assert not entries.bad_row.any()
    assert entries.row.tolist() == [0, 0, 0, 0, 2]
    assert entries.field.tolist() == [1, 3, 3, -1, 2]
    assert entries.id.tolist() == [7, 1, 2, 3, -(2**63)]
    assert entries.unknown_fields == ["999"]
    assert entries.value_texts(np.arange(5)) == [b"0.5", b"1.0", b"1.0", b"1.0", b"x"]


@pytest.mark.parametrize(
    "text, count, message",
    [
        ("", 2, "feature_num is 2 but the feature_list has 0 features"),
        (_entry("205", 1), 2, "feature_num is 2 but the feature_list has 1 features"),
        ("205\x021", 1, "feature '205\\\\x021' is not field\\\\x02id\\\\x03value"),
        ("205\x031\x022", 1, "is not field\\\\x02id\\\\x03value"),  # the separators swapped
        ("205\x021\x022\x033", 1, "is not field\\\\x02id\\\\x03value"),  # two ids
        (_entry("205", "+5"), 1, "column 'field 205 id' must hold an integer id. Received: '\\+5'"),
        (_entry("205", " 5"), 1, "must hold an integer id. Received: ' 5'"),
        (_entry("205", ""), 1, "must hold an integer id. Received: ''"),
        (_entry("205", "-"), 1, "must hold an integer id. Received: '-'"),
        (_entry("205", "1_000"), 1, "must hold an integer id. Received: '1_000'"),
        (_entry("205", 2**63), 1, "id 9223372036854775808 does not fit in int64"),
        (_entry("205", -(2**63) - 1), 1, "id -9223372036854775809 does not fit in int64"),
        (_entry("205", "1" * 20), 1, "does not fit in int64"),
    ],
)
def test_a_row_breaking_a_rule_is_marked_and_explained(text, count, message):
    good = _entry("205", 1)
    entries = _parse([good, text, good], [1, count, 1])
    assert entries.bad_row.tolist() == [False, True, False]
    assert entries.row.tolist() == [0, 2]  # the bad row's entries are left out
    assert re.search(message, feature_lists.explain(text, count))


def test_int64_limits_and_leading_zeros_are_ids():
    texts = [_entry("205", 2**63 - 1), _entry("205", -(2**63)), _entry("205", "0007"), _entry("205", "-0")]
    entries = _parse(texts)
    assert not entries.bad_row.any()
    assert entries.id.tolist() == [2**63 - 1, -(2**63), 7, 0]
    assert all(feature_lists.explain(t, 1) is None for t in texts)


def test_parse_marks_exactly_the_rows_explain_refuses_on_random_corruptions():
    rng = random.Random(0)
    texts, counts = [], []
    for _ in range(2000):
        entries = [
            _entry(rng.choice(FIELDS + ("7", "")), rng.choice([0, 5, -3, 10**18, "x", "", "1e3"]))
            for _ in range(rng.randrange(0, 6))
        ]
        text = "\x01".join(entries)
        if text and rng.random() < 0.3:  # delete or insert one separator somewhere
            at = rng.randrange(len(text))
            text = text[:at] + rng.choice(["", "\x01", "\x02", "\x03"]) + text[at + 1 :]
        texts.append(text)
        counts.append(len(entries) + (rng.random() < 0.05))
    parsed = _parse(texts, counts)
    for row, (text, count) in enumerate(zip(texts, counts)):
        assert parsed.bad_row[row] == (feature_lists.explain(text, count) is not None), (text, count)
    good_ids = [
        int(e.split("\x02")[1].split("\x03")[0])
        for t, b in zip(texts, parsed.bad_row)
        if not b and t
        for e in t.split("\x01")
    ]
    assert parsed.id.tolist() == good_ids


def test_an_empty_batch():
    entries = _parse([])
    assert len(entries.row) == 0 and len(entries.bad_row) == 0


def test_values_are_what_float_reads():
    texts = ["5.", ".5", "-0.0", "0007.25", "0.1", "123456789012345", "1234567890123456", "0.000000000000001"]
    texts += ["1e3", "nan", "inf", "", "-", "+1", " 1", "1.2.3", "1_0", "-.5", "x", "99999999999999.9"]
    rng = random.Random(1)
    texts += [f"{rng.uniform(-1e6, 1e6):.{rng.randrange(0, 9)}f}" for _ in range(500)]
    entries = _parse(["\x01".join(_entry("205", 1, t) for t in texts)])
    expected = []
    for text in texts:
        try:
            expected.append(float(text))
        except ValueError:
            expected.append(float("nan"))
    np.testing.assert_array_equal(entries.values(np.arange(len(texts))), np.array(expected))
    assert [np.signbit(v) for v in entries.values(np.array([2]))] == [True]  # -0.0 keeps its sign
