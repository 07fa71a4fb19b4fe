"""The CLI in this process, its output captured: fast, for everything that needs no process of its own."""

from __future__ import annotations

import io

from reconciler.cli import run
from reconciler.console import Output

__all__ = ["CliResult", "run_cli"]


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


def run_cli(*args: str) -> CliResult:
    """Run `reconciler ARGS` in this process and capture what it prints."""
    out, err = io.StringIO(), io.StringIO()
    code = run(list(args), Output(out, err, color=False))
    return CliResult(code, out.getvalue(), err.getvalue())
