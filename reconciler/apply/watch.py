"""What a person watches during an apply: its events on the progress bar or the CI log, where its time
went (RECONCILER_STATS), and the signals that drain it (SIGINT, and SIGTERM that CI sends on cancel)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from reconciler.apply.outcomes import ItemStatus
from reconciler.console import Output, ProgressReporter
from reconciler.state.journal import Journal

__all__ = ["Phases", "Signals", "reporter"]


def reporter(bar: ProgressReporter) -> Callable[[str, str], None]:
    """The evaluator's progress events onto the bar, or onto a CI log: items that did not apply and state
    changes get a line; polls and read-backs never do (console.ProgressReporter)."""

    def report(kind: str, text: str) -> None:
        if kind == "item":
            bar.advance(status=text, ok=text.startswith(ItemStatus.APPLIED.value + " "))
        elif kind == "state":
            bar.note(text)
        else:
            bar.hint(text)

    return report


class Phases:
    """Where an apply's time goes, for RECONCILER_STATS=1 (the README's breakdown is measured with it)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.spent: dict[str, float] = {}

    def lap(self, name: str, parts: dict[str, float] | None = None) -> None:
        now = time.perf_counter()
        if parts:
            self.spent.update({k.lower(): v for k, v in parts.items()})
        else:
            self.spent[name] = now - self.last
        self.last = now

    def line(self, journal: Journal) -> str:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        phases = ", ".join(f"{k} {v:.2f}s" for k, v in self.spent.items())
        return (
            f"stats: {phases}; journal {journal.commits} commits in {journal.commit_seconds:.2f}s; "
            f"peak RSS of this process {rss:.0f} MiB"
        )


class Signals:
    """First SIGINT or SIGTERM: no new submissions, drain those in flight. Second: exit now."""

    def __init__(self, stop: threading.Event, out: Output) -> None:
        self.stop, self.out = stop, out
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        if self.stop.is_set():
            self.out.error(f"Second {name}: exiting now. The journal is consistent; rerun apply to resume.")
            os._exit(128 + signum)
        self.stop.set()
        self.out.error(f"{name}: no new submissions; waiting for those in flight ({name} again to exit now).")

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
