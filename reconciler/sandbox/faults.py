"""Fault injection for the sandbox: what real vendors do on bad days.

A fault spec is a comma-separated list of `KIND[=ARG]@[METHOD:]PATH_GLOB[#COUNT][%PERCENT]`:

    429=2@POST:/api/v1/Trading/*#3    three 429s with Retry-After: 2 on Orion writes
    429=date@*#1                      one 429 whose Retry-After is an HTTP date 1 s ahead
    503=1@GET:/v1/order/tradetickets  503 with Retry-After 1, forever
    503=none@POST:/v1/order/tradetickets%3  3% of ticket POSTs answered 503 without Retry-After (not stored)
    500@POST:*/process/batch#1        one 500 on a batch submit (the batch is *not* created)
    drop@POST:/v1/order/tradetickets#1  accept and store, then drop the connection mid-answer
    slow=2.5@*#4                      act, then wait 2.5 s before answering
    late=3@POST:/v1/order/tradetickets#1  hold the request 3 s (past the client's time-out), then act
    garble@POST:*/process/batch#1     act, then answer 200 with an HTML page (garble=json: a JSON string)
    stuck@POST:*/process/batch#1      the next batch stays in Processing until released
    reject=31549@POST:*/process/batch  Orion fails registration 31549 in every batch (a business rule)

COUNT is how many requests it hits (default: every one). PERCENT makes it hit by chance, that share of
the matching requests (`429=1@*%5`: a vendor that pushes back now and then); the draws come from one
seeded generator (`FaultBook(seed=…)`, `reconciler sandbox --fault-seed`), so a run can be repeated.
The same rules can be set at run time with `PUT /_sandbox/faults` (a spec string or a JSON list of rule objects).
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import asdict, dataclass

__all__ = ["FAULT_KINDS", "Fault", "FaultBook", "parse_faults"]

FAULT_KINDS = ("429", "503", "500", "502", "drop", "slow", "late", "garble", "stuck", "reject")


@dataclass
class Fault:
    kind: str
    path: str = "*"
    method: str = "*"
    count: int | None = None  # None: every matching request
    arg: str | None = None  # Retry-After seconds or "date"; delay for slow
    rate: float | None = None  # hit only this share of matching requests (0–1), drawn at random

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and fnmatch.fnmatchcase(path, self.path)


def parse_faults(spec: str | list | None) -> list[Fault]:
    if not spec:
        return []
    if isinstance(spec, list):
        return [Fault(**{k: v for k, v in item.items() if k in Fault.__dataclass_fields__}) for item in spec]
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        head, _, where = part.partition("@")
        kind, _, arg = head.partition("=")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} in {part!r} (use {', '.join(FAULT_KINDS)})")
        where = where or "*"
        count = None
        rate = None
        if "%" in where:
            where, _, pct = where.rpartition("%")
            try:
                rate = float(pct) / 100
            except ValueError:
                raise ValueError(f"bad percentage {pct!r} in {part!r} (e.g. 429=1@*%5)") from None
        if "#" in where:
            where, _, n = where.rpartition("#")
            count = int(n)
        method, path = ("*", where)
        if ":" in where and where.split(":", 1)[0].isupper():
            method, path = where.split(":", 1)
        out.append(Fault(kind, path or "*", method or "*", count, arg or None, rate))
    return out


class FaultBook:
    """The active faults; `take()` finds the first that matches a request and uses one of its hits."""

    def __init__(self, faults: list[Fault] | None = None, *, seed: int | None = None):
        self._faults = list(faults or [])
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        # requests a `late` or `slow` fault is holding right now: a test checks its invariants only once
        # this is 0, so a write that lands after the client gave up is counted before anyone looks
        self.held = 0

    def holding(self, delta: int) -> None:
        with self._lock:
            self.held += delta

    def set(self, faults: list[Fault]) -> None:
        with self._lock:
            self._faults = list(faults)

    def add(self, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def take(self, method: str, path: str, kinds: tuple[str, ...] = FAULT_KINDS) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.kind in kinds and f.matches(method, path) and (f.count is None or f.count > 0):
                    if f.rate is not None and self._rng.random() >= f.rate:
                        continue  # not this time
                    if f.count is not None:
                        f.count -= 1
                    return Fault(**asdict(f))
            return None

    def peek_all(self, method: str, path: str, kind: str) -> list[Fault]:
        """Every matching fault of `kind`, without using up a hit (for standing rules like reject)."""
        with self._lock:
            return [
                Fault(**asdict(f))
                for f in self._faults
                if f.kind == kind and f.matches(method, path) and (f.count is None or f.count > 0)
            ]

    def describe(self) -> list[dict]:
        with self._lock:
            return [asdict(f) for f in self._faults]
