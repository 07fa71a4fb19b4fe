"""Terminal output: the only module that imports rich.

Renderers return plain strings; this module decides how they reach a person. Every line it writes
passes `_guard`: a control or invisible character that got this far (an ESC sequence, an OSC title,
a bidi override) is printed as a visible escape, never raw; rich itself only strips BEL. Renderers
escape each interpolated value too (escaping.terminal), which also turns an embedded newline into
"\n", so a vendor string cannot forge a line of output. On a terminal, plan
lines are coloured by their marker (+ green, ~ yellow, - red, ! magenta) and long work shows a
progress bar. In CI (no terminal, or CI=true) the same text goes out plain, and progress becomes
one log line per event, because a bar redrawn in a log file is noise.
"""

from __future__ import annotations

import sys
import threading
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

    def progress(self, title: str, total: int) -> ProgressReporter:
        return ProgressReporter(self, title, total)


class ProgressReporter:
    """A bar on a terminal; plain `title: n/total what` lines otherwise. Thread-safe."""

    def __init__(self, output: Output, title: str, total: int):
        self.output = output
        self.title = title
        self.total = total
        self.done = 0
        self.lock = threading.Lock()
        self.bar: Progress | None = None
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
        return self

    def __exit__(self, *exc) -> None:
        if self.bar:
            self.bar.stop()

    def advance(self, n: int = 1, status: str = "") -> None:
        with self.lock:
            self.done += n
            if self.bar:
                self.bar.update(self.task, advance=n, status=status)
            else:
                self.output.info(f"{self.title}: {self.done}/{self.total} {status}".rstrip())

    def note(self, message: str) -> None:
        with self.lock:
            if self.bar:
                self.bar.update(self.task, status=message)
            else:
                self.output.info(f"{self.title}: {message}")


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
