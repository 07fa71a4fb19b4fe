"""Shared fixtures: run the CLI in-process, write manifest trees, forbid sockets where asked."""

from __future__ import annotations

import io
import socket
import textwrap
from pathlib import Path

import pytest

from reconciler.cli import run
from reconciler.console import Output

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def write(tmp_path):
    """write("name.yaml", text) → path; text is dedented."""

    def _write(name: str, text: str | bytes) -> Path:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return p

    return _write


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""
    opened = []

    class Forbidden(socket.socket):
        def __init__(self, *a, **k):
            opened.append(a)
            raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", Forbidden)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(AssertionError("connect")))
    return opened
