"""Counts of a conversion: rows read, written per split, dropped per reason, malformed lines.

Every row a converter reads ends up in exactly one place: written to a split,
or dropped with a reason. Malformed lines are dropped under the reason
"malformed" while fewer than `max_errors` have been seen; the next one stops
the conversion with an error naming the file and line.
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
    """

    def __init__(self, max_errors: int = 0):
        if max_errors < -1:
            raise ValueError(f"`max_errors` must be -1 (no limit), 0 or positive. Received: {max_errors}")
        self.max_errors = max_errors
        self.rows_read = 0
        self.written = {}
        self.dropped = {}
        self.errors = []
        self.notes = {}
        self.vocabulary = {}
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

    def malformed(self, location: str, message: str) -> None:
        """Records a malformed line; raises `ConversionError` once more than `max_errors` were seen."""
        self.drop(MALFORMED)
        text = f"{location}: {message}"
        if len(self.errors) < _QUOTED_ERRORS:
            self.errors.append(text)
        if self.max_errors != -1 and self.dropped[MALFORMED] > self.max_errors:
            raise ConversionError(
                f"{text} (malformed line {self.dropped[MALFORMED]}; --max_errors={self.max_errors} "
                "allows skipping that many, -1 skips all)"
            )

    @property
    def rows_written(self) -> int:
        return sum(self.written.values())

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._start

    def to_dict(self) -> dict:
        seconds = self.seconds
        return {
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "written_by_split": dict(self.written),
            "dropped_by_reason": dict(self.dropped),
            "counts": dict(self.notes),
            "vocabulary": dict(self.vocabulary),
            "malformed_examples": list(self.errors),
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
        lines += [
            f"{kind}: " + ", ".join(f"{name}={n:,}" for name, n in per_feature.items())
            for kind, per_feature in self.vocabulary.items()
            if per_feature
        ]
        lines += [f"  {error}" for error in self.errors[:5]]
        return "\n".join(lines)

    def save(self, path: str) -> None:
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps(self.to_dict(), indent=2) + "\n")


class Progress:
    """A progress bar over the bytes of the input, with rows/s (keras Progbar).

    Updates at most every `interval` seconds, so the bar costs nothing per row.
    """

    def __init__(self, total_bytes: int, report: ConversionReport, verbose: bool = True, interval: float = 1.0):
        self._report = report
        self._verbose = verbose
        self._interval = interval
        self._last = time.monotonic()
        self._bar = (
            keras.utils.Progbar(
                max(total_bytes, 1), unit_name="byte", stateful_metrics=["rows", "rows/s"], interval=interval
            )
            if verbose
            else None
        )

    def update(self, bytes_done: int, force: bool = False) -> None:
        if self._bar is None:
            return
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        seconds = max(self._report.seconds, 1e-9)
        self._bar.update(
            bytes_done,
            values=[("rows", self._report.rows_read), ("rows/s", self._report.rows_read / seconds)],
            finalize=force,
        )
