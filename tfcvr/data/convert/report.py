"""Counts of a conversion: rows read, written per split, dropped per reason, malformed lines.

Every row a converter reads ends up in exactly one place: written to a split,
or dropped with a reason. Malformed lines are dropped under the reason
"malformed" while fewer than `max_errors` have been seen; the next one stops
the conversion with an error naming the file and line.

Each chunk of the input is tallied in its own report and the reports are
merged (`merge`), so a conversion split over processes counts exactly what a
single process counts; the quoted malformed lines are the first ones in input
order (file, line), whichever process saw them.
"""

import json
import time

import keras
import tensorflow as tf

MALFORMED = "malformed"
# Malformed lines quoted in the report (all are counted).
_QUOTED_ERRORS = 20


class ConversionError(ValueError):
    """A malformed input line beyond `--max_errors`, or input that cannot be converted at all."""


class ConversionReport:
    """Tallies a conversion and decides whether a malformed line stops it.

    Args:
      max_errors: malformed lines to skip (counted, quoted) before stopping;
        0 stops at the first one, -1 never stops.
      malformed_before: malformed lines counted elsewhere (earlier chunks of
        the same conversion) that count towards `max_errors`.
    """

    def __init__(self, max_errors: int = 0, malformed_before: int = 0):
        if max_errors < -1:
            raise ValueError(f"`max_errors` must be -1 (no limit), 0 or positive. Received: {max_errors}")
        self.max_errors = max_errors
        self.malformed_before = malformed_before
        self.rows_read = 0
        self.written: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        # (file index, line, text), the first _QUOTED_ERRORS in input order
        self.errors: list[tuple[int, int, str]] = []
        self.notes: dict[str, int] = {}
        self.vocabulary: dict[str, dict] = {}  # {"distinct_values"|"longest_list"|"numeric": {feature: ...}}
        self.seconds: float | None = None  # the run's wall time, set by the runner; until then, time since creation
        self._start = time.monotonic()

    def read(self, count: int = 1) -> None:
        self.rows_read += count

    def wrote(self, split: str) -> None:
        self.written[split] = self.written.get(split, 0) + 1

    def drop(self, reason: str, count: int = 1) -> None:
        """A row dropped by design (e.g. conversion without click): counted under `reason`."""
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def count(self, name: str, amount: int = 1) -> None:
        """A reported tally that is not a dropped row (e.g. list values truncated)."""
        self.notes[name] = self.notes.get(name, 0) + amount

    def malformed(self, location: str, message: str, position: tuple[int, int] = (0, 0)) -> None:
        """Records a malformed line at `position` (file index, line); raises once more than `max_errors` were seen."""
        self.drop(MALFORMED)
        text = f"{location}: {message}"
        if len(self.errors) < _QUOTED_ERRORS:
            self.errors.append((*position, text))
        seen = self.malformed_before + self.dropped[MALFORMED]
        if self.max_errors != -1 and seen > self.max_errors:
            raise ConversionError(
                f"{text} (malformed line {seen}; --max_errors={self.max_errors} allows skipping that many, "
                "-1 skips all)"
            )

    def merge(self, other: "ConversionReport") -> "ConversionReport":
        """Adds `other`'s tallies into this report (returns self)."""
        self.rows_read += other.rows_read
        for mine, theirs in ((self.written, other.written), (self.dropped, other.dropped), (self.notes, other.notes)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        self.errors = sorted(self.errors + other.errors)[:_QUOTED_ERRORS]
        return self

    def check_max_errors(self) -> None:
        """Raises `ConversionError` if the merged report holds more malformed lines than `max_errors`."""
        seen = self.dropped.get(MALFORMED, 0)
        if self.max_errors != -1 and seen > self.max_errors:
            first = self.errors[0][2] if self.errors else ""
            raise ConversionError(
                f"{seen} malformed lines, more than --max_errors={self.max_errors} (-1 skips all); the first: {first}"
            )

    @property
    def rows_written(self) -> int:
        return sum(self.written.values())

    def to_dict(self) -> dict:
        seconds = self.seconds if self.seconds is not None else time.monotonic() - self._start
        return {
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "written_by_split": dict(self.written),
            "dropped_by_reason": dict(self.dropped),
            "counts": dict(self.notes),
            "vocabulary": dict(self.vocabulary),
            "malformed_examples": [text for _, _, text in self.errors],
            "seconds": round(seconds, 3),
            "rows_per_second": round(self.rows_read / seconds, 1) if seconds > 0 else None,
        }

    def summary(self) -> str:
        d = self.to_dict()
        lines = [
            f"rows read {d['rows_read']:,}, written {d['rows_written']:,} {d['written_by_split']}, "
            f"{d['rows_per_second'] or 0:,.0f} rows/s",
        ]
        lines += [f"dropped ({reason}): {n:,}" for reason, n in sorted(self.dropped.items())]
        lines += [f"{name}: {n:,}" for name, n in sorted(self.notes.items())]
        counts = {kind: self.vocabulary.get(kind) for kind in ("distinct_values", "longest_list")}
        lines += [
            f"{kind}: " + ", ".join(f"{name}={n:,}" for name, n in per_feature.items())
            for kind, per_feature in counts.items()
            if per_feature
        ]
        numeric = {k: v for k, v in self.vocabulary.get("numeric", {}).items() if v["mean"] is not None}
        if numeric:
            lines.append(
                "numeric mean/variance: "
                + ", ".join(f"{name}={v['mean']:.4g}/{v['variance']:.4g}" for name, v in numeric.items())
            )
        lines += [f"  {text}" for _, _, text in self.errors[:5]]
        return "\n".join(lines)

    def save(self, path: str) -> None:
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps(self.to_dict(), indent=2) + "\n")


class Progress:
    """A progress bar over the bytes of the input, with rows/s (keras Progbar), updated per converted chunk."""

    def __init__(self, total_bytes: int, verbose: bool = True):
        self._start = time.monotonic()
        self._bar = (
            keras.utils.Progbar(max(total_bytes, 1), unit_name="byte", stateful_metrics=["rows", "rows/s"])
            if verbose
            else None
        )

    def update(self, bytes_done: int, rows: int, force: bool = False) -> None:
        if self._bar is None:
            return
        seconds = max(time.monotonic() - self._start, 1e-9)
        self._bar.update(bytes_done, values=[("rows", rows), ("rows/s", rows / seconds)], finalize=force)
