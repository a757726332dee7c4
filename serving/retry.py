"""Retries with exponential backoff for requests a server may refuse while it (re)loads."""

import random
import time
from collections.abc import Callable
from typing import TypeVar

from serving.errors import ServingError

_T = TypeVar("_T")


class RetryPolicy:
    """Retry on UNAVAILABLE (server starting, reloading, overloaded) with capped exponential backoff.

    Attempt k (k = 1, 2, ...) failing with a retryable code sleeps a random
    time in [0, min(max_backoff, initial_backoff · multiplier^(k-1))] ("full
    jitter", so many clients do not retry in lockstep), then tries again, up
    to `max_attempts` in all. Other codes (INVALID_ARGUMENT, NOT_FOUND,
    DEADLINE_EXCEEDED) are raised at once: repeating them cannot succeed, and
    a ranking request past its deadline is no longer wanted.

    Args:
      max_attempts: attempts in all, at least 1 (1 = no retry).
      initial_backoff, max_backoff: seconds.
      multiplier: backoff growth per attempt.
      retryable_codes: status names that are retried.
      sleep: the sleep function (tests pass a recorder).
    """

    def __init__(
        self,
        max_attempts=4,
        initial_backoff=0.05,
        max_backoff=1.0,
        multiplier=2.0,
        retryable_codes=("UNAVAILABLE",),
        sleep=time.sleep,
    ):
        if int(max_attempts) < 1:
            raise ValueError(f"`max_attempts` must be at least 1. Received: {max_attempts}")
        if initial_backoff < 0 or max_backoff < 0 or multiplier < 1:
            raise ValueError(
                "Backoffs must be non-negative and `multiplier` at least 1. Received: "
                f"{initial_backoff}, {max_backoff}, {multiplier}"
            )
        self.max_attempts = int(max_attempts)
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.multiplier = multiplier
        self.retryable_codes = frozenset(retryable_codes)
        self.sleep = sleep

    def backoff(self, attempt: int) -> float:
        """Upper bound of the sleep after failed attempt `attempt` (1-based)."""
        return min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))

    def call(self, send: Callable[[], _T]) -> _T:
        """Calls `send()` until it returns or raises a non-retryable `ServingError`."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return send()
            except ServingError as error:
                if error.code not in self.retryable_codes or attempt == self.max_attempts:
                    raise ServingError(error.code, error.message, attempts=attempt) from error
            self.sleep(random.uniform(0.0, self.backoff(attempt)))
        raise AssertionError("unreachable")
