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


# --- the sandbox, on a free loopback port ------------------------------------------------------

from reconciler.config import OrionSettings, SeiSettings, Secret, Settings  # noqa: E402
from reconciler.providers import open_vendors  # noqa: E402
from reconciler.sandbox.demo import demo_state  # noqa: E402
from reconciler.sandbox.server import start_sandbox  # noqa: E402
from reconciler.sandbox.state import SandboxState, SandboxTiming  # noqa: E402

FAST_BATCHES = 0.2  # seconds a sandbox batch takes in tests


def settings_for(sb, **overrides) -> Settings:
    """Settings that point both clients at a running sandbox, with quick retries for tests."""
    base = Settings(
        orion=OrionSettings(sb.orion_url, Secret(sb.creds.orion_token), "demo-user", Secret("demo-password")),
        sei=SeiSettings(sb.sei_url, Secret(sb.creds.sei_token), Secret(sb.creds.sei_app_key),
                        Secret("demo-app-secret"), "demo-user", Secret("demo-password")),
        read_timeout=5, connect_timeout=2, request_deadline=20, retry_after_cap=5,
    )
    return base.with_overrides(**overrides)


@pytest.fixture
def sandbox():
    state = SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=FAST_BATCHES))
    with start_sandbox(state) as sb:
        yield sb


@pytest.fixture
def vendors(sandbox):
    with open_vendors(settings_for(sandbox)) as v:
        yield v


def sandbox_env(sb) -> dict[str, str]:
    """Environment for a CLI run against `sb`: quick retries, a 2 s read time-out, a 3 s settle window."""
    return {**sb.env(), "RECONCILER_MAX_ATTEMPTS": "4", "RECONCILER_READ_TIMEOUT": "2",
            "RECONCILER_SETTLE_WINDOW": "3"}


def journal_file(workspace: Path) -> Path:
    """The journal under a RECONCILER_WORKSPACE folder (one sub-folder per workspace key)."""
    found = sorted(workspace.glob("*/journal.db"))
    return found[0] if found else workspace / "none" / "journal.db"


@pytest.fixture
def env(sandbox, monkeypatch, tmp_path):
    """The CLI run from the repository root against `sandbox`, with its own apply workspace."""
    monkeypatch.chdir(ROOT)
    for k, v in sandbox_env(sandbox).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("RECONCILER_WORKSPACE", str(tmp_path / "ws"))
    return sandbox
