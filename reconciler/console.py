"""Terminal output: the only module that imports rich.

Renderers return plain strings; this module decides how they reach a person. Every line it writes
passes `_guard`: a control or invisible character that got this far (an ESC sequence, an OSC title,
a bidi override) is printed as a visible escape, never raw; rich itself only strips BEL. Renderers
escape each interpolated value too (escaping.terminal), which also turns an embedded newline into
"\n", so a vendor string cannot forge a line of output. On a terminal, plan
lines are coloured by their marker (+ green, ~ yellow, - red, ! magenta) and long work shows a
progress bar. In CI (no terminal, or CI=true) the same text goes out plain, and progress becomes
a log line per event worth reading (a state change, a failure) plus a heartbeat every 30 s, because a
bar redrawn in a log file is noise and a line per poll drowns the log.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from reconciler.escaping import visible

__all__ = ["Output", "ProgressReporter"]

_MARKER_STYLES = {
    "+": "green",
    "~": "yellow",
    "-": "red",
    "!": "magenta",
    "#": "bold",
    "✓": "green",
    "✗": "red",
    "?": "yellow",
    "·": "dim",
}


def _guard(text: str) -> str:
    """Keep the line structure; show everything else that is not printable as an escape."""
    if text.isascii() and all(c >= " " or c == "\n" for c in text) and "\x7f" not in text:
        return text
    return "\n".join(visible(line) for line in text.split("\n"))


class Output:
    """Where the CLI writes: stdout for results, stderr for errors and progress."""

    def __init__(
        self,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        color: bool | None = None,
        *,
        ci: bool = False,
        no_color: bool = False,
    ):
        """`color` None: colour on a terminal, unless in CI (`ci`) or asked not to (`no_color`, NO_COLOR)."""
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.ci = ci
        tty = _isatty(self.stdout) and not ci
        self.color = tty and not no_color if color is None else color
        self._out = Console(
            file=self.stdout,
            force_terminal=self.color,
            no_color=not self.color,
            highlight=False,
            soft_wrap=True,
            emoji=False,
            markup=False,
        )
        self._err = Console(
            file=self.stderr,
            force_terminal=self.color and _isatty(self.stderr),
            no_color=not self.color,
            highlight=False,
            soft_wrap=True,
            emoji=False,
            markup=False,
        )

    @property
    def interactive(self) -> bool:
        return _isatty(sys.stdin) and _isatty(self.stderr)

    def result(self, text: str) -> None:
        """A rendered result (plan, report). Coloured by line marker on a terminal."""
        text = _guard(text)
        if not self.color:
            self.stdout.write(text if text.endswith("\n") else text + "\n")
            self.stdout.flush()
            return
        for line in text.splitlines():
            stripped = line.lstrip()
            style = _MARKER_STYLES.get(stripped[:1]) if stripped[1:2] == " " else None
            if stripped.startswith("Plan:") or stripped.startswith("Apply:"):
                style = "bold"
            self._out.print(Text(line, style=style or ""))

    def error(self, message: str) -> None:
        self._err.print(Text(_guard(message), style="red" if self.color else ""))

    def info(self, message: str) -> None:
        self._err.print(Text(_guard(message)))

    def confirm(self, question: str) -> bool:
        self.stderr.write(f"{_guard(question)} Only 'yes' will be accepted: ")
        self.stderr.flush()
        return sys.stdin.readline().strip() == "yes"

    def progress(self, title: str, total: int, *, heartbeat: float | None = None) -> ProgressReporter:
        return ProgressReporter(self, title, total, heartbeat=heartbeat)


class ProgressReporter:
    """A bar on a terminal. In a log (CI), lines that grow with what happened, never with time or polls:
    one per noteworthy event (`note`), one per item that did not succeed (`advance(..., ok=False)`), and a
    heartbeat every `HEARTBEAT` seconds with done / total, rate and ETA. `hint` is for the bar alone.
    Thread-safe."""

    HEARTBEAT = 30.0

    def __init__(self, output: Output, title: str, total: int, *, heartbeat: float | None = None):
        self.output = output
        self.title = title
        self.total = total
        self.done = 0
        self.lock = threading.Lock()
        self.bar: Progress | None = None
        self.heartbeat = self.HEARTBEAT if heartbeat is None else heartbeat
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if output.color and _isatty(output.stderr):
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=output._err,
                transient=False,
            )
            self.task = self.bar.add_task(title, total=total, status="")

    def __enter__(self) -> ProgressReporter:
        if self.bar:
            self.bar.start()
        elif self.total and self.heartbeat > 0:
            self._ticker = threading.Thread(target=self._beat, name="progress-heartbeat", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.bar:
            self.bar.stop()

    def advance(self, n: int = 1, status: str = "", *, ok: bool = True) -> None:
        """`n` items done; in a log, an item that did not succeed gets its own line (`ok=False`)."""
        with self.lock:
            self.done += n
            if self.bar:
                self.bar.update(self.task, advance=n, status=status)
            elif not ok:
                self.output.info(f"{self.title}: {self.done}/{self.total} {status}".rstrip())

    def note(self, message: str) -> None:
        """Something a log should show: a batch's state changed, a write in doubt, a finding."""
        with self.lock:
            if self.bar:
                self.bar.update(self.task, status=message)
            else:
                self.output.info(f"{self.title}: {message}")

    def hint(self, message: str) -> None:
        """Transient status (a poll, a read-back): on the bar; never a log line."""
        with self.lock:
            if self.bar:
                self.bar.update(self.task, status=message)

    def line(self) -> str:
        """done / total, rate and ETA, as the heartbeat prints it."""
        elapsed = max(1e-9, time.monotonic() - self._started)
        rate = self.done / elapsed
        eta = f"ETA {_duration((self.total - self.done) / rate)}" if rate > 0 and self.done < self.total else "ETA ?"
        return f"{self.title}: {self.done}/{self.total} done, {rate:.1f}/s, {_duration(elapsed)} elapsed, {eta}"

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            with self.lock:
                text = self.line()
            self.output.info(text)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
