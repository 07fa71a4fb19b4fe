"""Shared fixtures: run the CLI in-process, write manifest trees, forbid sockets where asked."""

from __future__ import annotations

import io
import os
import socket
import tempfile
import textwrap
from pathlib import Path

import pytest

from reconciler.cli import run
from reconciler.console import Output

ROOT = Path(__file__).resolve().parent.parent

# Claims live machine-wide (the user's state folder) by default; the suite's, and those of every CLI
# process it starts, stay in a folder of its own (one per xdist worker).
os.environ.setdefault("RECONCILER_CLAIMS_DIR", tempfile.mkdtemp(prefix="reconciler-test-claims-"))


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
from reconciler.vendors import open_vendors  # noqa: E402
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


def claims_for(tmp_path: Path, workspace: str = "test"):
    """Claims of one test workspace, in the test's own folder (claims.py)."""
    from reconciler.state.claims import SqliteClaims

    return SqliteClaims(tmp_path / "claims.db", workspace, str(tmp_path / workspace))


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


# --- a throwaway PostgreSQL cluster for the shared state backend ------------------------------------

import glob  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

PG_PASSWORD = "canary-pg-pass-5b7e1f"   # must never appear in any output, log, report or journal


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
    subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "reconciler", "--pwfile", str(pwfile),
                    "-A", "scram-sha-256", "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    pwfile.unlink()
    subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                    f"-p {port} -k {run} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://reconciler:{PG_PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_fresh(pg_url):
    """The cluster with the reconciler schema dropped: each test starts with an empty shared journal."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS reconciler CASCADE")
    return pg_url


def wait_for(condition, timeout: float = 30.0) -> None:
    """Poll `condition` every 20 ms until it holds; fail the test after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the condition")
        time.sleep(0.02)


def chromium_or_skip() -> str:
    """Debian's Chromium; CI must have it (.ci/run installs it), elsewhere the test skips with a reason."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium: .ci/run installs Debian's chromium package")
        pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it and runs this test")
    return browser


def issue_tls_files(directory: Path, *, client_not_after=None) -> dict[str, str]:
    """PEM files from a throwaway trustme CA: a server certificate for 127.0.0.1/localhost, a client
    certificate (expiring at `client_not_after` when given) and an unrelated key for mismatch tests."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("svc-reconciler@example.com", not_after=client_not_after)
    other = ca.issue_cert("someone-else@example.com")
    paths = {n: str(directory / f"{n}.pem") for n in ("ca", "server_cert", "server_key", "client_cert", "client_key",
                                                      "other_key")}
    ca.cert_pem.write_to_path(paths["ca"])
    server.cert_chain_pems[0].write_to_path(paths["server_cert"])
    server.private_key_pem.write_to_path(paths["server_key"])
    client.cert_chain_pems[0].write_to_path(paths["client_cert"])
    client.private_key_pem.write_to_path(paths["client_key"])
    other.private_key_pem.write_to_path(paths["other_key"])
    return paths
