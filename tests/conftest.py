"""Fixtures every test folder shares: the CLI in-process, manifest files, sandboxes, a PostgreSQL cluster.

Helpers that are not fixtures live in tests/helpers/ (one module per concern), imported where used.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from reconciler.sandbox.demo import demo_state
from reconciler.sandbox.server import start_sandbox
from reconciler.sandbox.state import SandboxState, SandboxTiming
from reconciler.vendors import open_vendors

from .helpers.cli import run_cli
from .helpers.processes import ROOT, quick_env
from .helpers.vendors import settings_for

# Claims live machine-wide (the user's state folder) by default; the suite's, and those of every CLI
# process it starts, stay in a folder of its own.
os.environ.setdefault("RECONCILER_CLAIMS_DIR", tempfile.mkdtemp(prefix="reconciler-test-claims-"))
# The manifest cache (manifests/cache.py) too: a run of the suite never writes into the user's ~/.cache.
os.environ.setdefault("RECONCILER_CACHE_DIR", tempfile.mkdtemp(prefix="reconciler-test-cache-"))


@pytest.fixture(autouse=True)
def claims_of_this_test(tmp_path_factory, monkeypatch):
    """Each test its own claims. A claim is keyed by endpoint, and a sandbox's port can be reused: a killed
    apply's claim (its journal still open, so rightly held) once met a later test's sandbox on the same
    port, and that test's registrations were skipped as held by another workspace."""
    monkeypatch.setenv("RECONCILER_CLAIMS_DIR", str(tmp_path_factory.mktemp("claims")))


FAST_BATCHES = 0.2  # seconds a sandbox batch takes in most tests
SLOW_BATCHES = 5.0  # seconds a batch takes where a second command must meet it still processing


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


# --- sandboxes, on free loopback ports ---------------------------------------------------------------


@pytest.fixture
def sandbox():
    state = SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=FAST_BATCHES))
    with start_sandbox(state) as sb:
        yield sb


@pytest.fixture
def slow():
    """A sandbox whose batches take 5 s: longer than every client time-out in the tests."""
    state = SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=SLOW_BATCHES))
    with start_sandbox(state) as sb:
        yield sb


@pytest.fixture
def vendors(sandbox):
    with open_vendors(settings_for(sandbox)) as v:
        yield v


@pytest.fixture
def env(sandbox, monkeypatch, tmp_path):
    """The CLI run in this process from the repository root against `sandbox`, with its own workspace."""
    monkeypatch.chdir(ROOT)
    for k, v in quick_env(sandbox).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("RECONCILER_WORKSPACE", str(tmp_path / "ws"))
    return sandbox


# --- a throwaway PostgreSQL cluster for the shared state backend ------------------------------------

PG_PASSWORD = "canary-pg-pass-5b7e1f"  # must never appear in any output, log, report or journal


def _pg_bin() -> Path | None:
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin"):
        for d in sorted(glob.glob(pattern), reverse=True):
            if os.path.exists(os.path.join(d, "initdb")):
                return Path(d)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_url():
    """postgresql://… of a fresh cluster on a loopback port (initdb refuses root: run as `postgres`)."""
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have PostgreSQL's server binaries: .ci/run installs Debian's postgresql package")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
    data, run = root / "data", root / "run"
    run.mkdir()
    as_postgres = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(run, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    pwfile = root / "pw"
    pwfile.write_text(PG_PASSWORD)
    if as_postgres:
        shutil.chown(pwfile, "postgres")
    port = _free_port()
    subprocess.run(
        [
            *as_postgres,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "reconciler",
            "--pwfile",
            str(pwfile),
            "-A",
            "scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    pwfile.unlink()
    subprocess.run(
        [
            *as_postgres,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(root / "log"),
            "-o",
            f"-p {port} -k {run} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://reconciler:{PG_PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_fresh(pg_url):
    """The cluster with the reconciler schema dropped: each test starts with an empty shared journal."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS reconciler CASCADE")
    return pg_url
