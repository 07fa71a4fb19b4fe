"""When to try a request again, and how long to wait: the policy, Retry-After, and the pause all share.

- Safe requests (GET, and the bulk-read POST) are retried with jittered exponential backoff on
  connection failures, time-outs, 5xx and 429/503. Writes only when they surely never left.
- 429/503 with Retry-After (seconds or an HTTP date), capped, pause *every* worker sharing the
  PauseGate (one per vendor): a vendor that says when to come back is honoured until the request's
  deadline, and the other vendor's workers go on.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["HttpPolicy", "PauseGate", "backoff", "parse_retry_after"]


@dataclass(frozen=True)
class HttpPolicy:
    max_attempts: int = 5
    backoff_base: float = 0.5  # first retry waits up to 0.5 s, doubling
    backoff_cap: float = 20.0
    retry_after_cap: float = 120.0
    deadline: float = 300.0  # one logical request, every attempt and pause included
    max_throttled: int = 50  # 429/503 answers ridden out per request (the deadline usually ends it first)


def backoff(policy: HttpPolicy, attempt: int) -> float:
    """Full jitter: a random wait up to base × 2^(attempt−1), capped."""
    return random.uniform(0, min(policy.backoff_cap, policy.backoff_base * 2 ** (attempt - 1)))


class PauseGate:
    """One pause shared by all of a vendor's workers: a 429 seen by one worker holds back the others too."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self._until = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)

    def paused(self) -> bool:
        with self._lock:
            return self._until > self._clock()

    def wait(self, deadline: float) -> None:
        while True:
            with self._lock:
                remaining = self._until - self._clock()
            if remaining <= 0:
                return
            if self._clock() + remaining > deadline:
                raise TimeoutError("the vendor asked to wait past this request's deadline")
            self._sleep(min(remaining, 0.25))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date relative to now. None if absent or garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
