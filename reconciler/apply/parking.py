"""Writes in doubt, settled beside the wave instead of inside it.

A write whose answer was lost must be read back over a settle window (minutes) before anything else
may happen to it. Done inside the worker that sent it, four tickets in doubt parked all four workers
and the writes stopped for two minutes at a time. Here the wait is data: a parked task is a generator
that yields how many seconds until its next look and returns its finding (apply/recovery.py writes
its evidence loops that way). `Parking` keeps every parked task on one schedule and runs each due
step on a few threads of its own, so a hundred writes in doubt cost a hundred read-backs on their
own schedules, not a hundred workers asleep, and the wave goes on with the others.

Nothing here decides anything about a write: the task's `then` gets its finding and decides, with
the journal, exactly as it would have inline.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["Parking", "Steps", "drive"]

T = TypeVar("T")
Steps = Generator[float, None, T]  # yields seconds to wait before the next step; returns the finding


def drive(steps: Steps[T], sleep: Callable[[float], None] = time.sleep) -> T:
    """Run a task inline, sleeping between its steps (recovery's unit tests, and one-off waits)."""
    while True:
        try:
            delay = next(steps)
        except StopIteration as done:
            return done.value
        sleep(max(0.0, delay))


class Parking:
    """Parked tasks on one schedule; `join` waits until every task (and what its `then` parked) ended."""

    def __init__(
        self,
        workers: int = 4,
        *,
        name: str = "parked",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """`clock` and `sleep` may be a unit test's fake pair; by default the schedule waits on the real
        clock and wakes early when something new is parked."""
        self._workers, self._name = max(1, workers), name
        self._clock, self._sleep = clock, sleep
        self._cv = threading.Condition()
        self._due: list[tuple[float, int, Steps[Any], Callable[[Any], None], Callable[[BaseException], None]]] = []
        self._seq = itertools.count()
        self._outstanding = 0  # parked or running
        self._running = 0  # steps on a thread now
        self._joining = False  # the owner waits in join(): nothing more will be parked from outside
        self._closed = False
        self._pool: ThreadPoolExecutor | None = None
        self._dispatcher: threading.Thread | None = None

    def park(self, steps: Steps[T], then: Callable[[T], None], on_error: Callable[[BaseException], None]) -> None:
        """Run `steps` beside the caller; `then(finding)` once it returns, `on_error(e)` if it raises
        (either may park more). The first step runs at once."""
        with self._cv:
            if self._closed:
                raise RuntimeError("parking is closed")
            self._outstanding += 1
            self._push(self._clock(), steps, then, on_error)
            if self._dispatcher is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
                self._dispatcher = threading.Thread(target=self._dispatch, name=f"{self._name}-schedule", daemon=True)
                self._dispatcher.start()

    @property
    def outstanding(self) -> int:
        with self._cv:
            return self._outstanding

    def join(self) -> None:
        with self._cv:
            self._joining = True
            self._cv.notify_all()
            try:
                while self._outstanding:
                    self._cv.wait()
            finally:
                self._joining = False

    def close(self) -> None:
        """After `join`: stop the scheduler and its threads."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._dispatcher is not None:
            self._dispatcher.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> Parking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.join()
        self.close()

    # --- inside -----------------------------------------------------------------------------------

    def _push(self, at: float, steps: Steps[Any], then: Callable[[Any], None], on_error: Callable[..., None]) -> None:
        heapq.heappush(self._due, (at, next(self._seq), steps, then, on_error))
        self._cv.notify_all()

    def _dispatch(self) -> None:
        while True:
            with self._cv:
                while not self._closed:
                    if self._due and self._due[0][0] <= self._clock():
                        break
                    wait = None if not self._due else max(0.0, self._due[0][0] - self._clock())
                    if self._sleep is None or wait is None or self._running or not self._joining:
                        self._cv.wait(wait if self._sleep is None else None)
                    else:  # a fake clock, its owner waiting in join() and no step running: move the clock
                        self._cv.release()
                        try:
                            self._sleep(wait)
                        finally:
                            self._cv.acquire()
                if self._closed:
                    return
                _, _, steps, then, on_error = heapq.heappop(self._due)
                self._running += 1
            assert self._pool is not None
            self._pool.submit(self._step, steps, then, on_error)

    def _step(self, steps: Steps[Any], then: Callable[[Any], None], on_error: Callable[[BaseException], None]) -> None:
        try:
            try:
                delay = next(steps)
            except StopIteration as done:
                then(done.value)
            else:
                with self._cv:
                    self._outstanding += 1  # still parked: balanced by the decrement below
                    self._push(self._clock() + max(0.0, delay), steps, then, on_error)
        except BaseException as e:  # a bug or a database error in a finding's handling: reported by on_error
            try:
                on_error(e)
            except BaseException:
                pass
        finally:
            with self._cv:
                self._running -= 1
                self._outstanding -= 1
                self._cv.notify_all()
