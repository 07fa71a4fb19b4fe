"""The shared state backend on a real PostgreSQL server (issue 13): recovery across machines, one apply
at a time across directories, lock status, and a backend password that appears nowhere."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import psycopg
import pytest

from ..conftest import PG_PASSWORD
from ..helpers.processes import reconciler, sandbox_env
from ..helpers.processes import start as start_process
from ..helpers.sandbox import wait_for
from ..helpers.trees import repository

pytestmark = pytest.mark.integration

TICKETS = (10000002, 10000003, 10000102)


def shared_env(sb, where: Path, url: str, **extra) -> dict[str, str]:
    return sandbox_env(
        sb, workspace=where / ".reconciler", RECONCILER_BACKEND_URL=url, RECONCILER_POLL_TIMEOUT="60", **extra
    )


def run(where: Path, env, *args, timeout=120):
    return reconciler(env, *args, cwd=where, timeout=timeout)


def start(where: Path, env, *args):
    return start_process(env, *args, cwd=where)


def batch_state(url: str, state: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            return bool(conn.execute("SELECT 1 FROM reconciler.batches WHERE state = %s", (state,)).fetchone())
        except psycopg.errors.UndefinedTable:
            return False


@pytest.mark.slow
def test_an_apply_killed_on_one_runner_is_recovered_from_another(slow, tmp_path, pg_fresh):
    """SIGKILL in workspace A while its batch processes; rerun from B (another directory, an empty
    .reconciler/) against the same database: one batch POST in all, every ticket once, plan empty."""
    a, b = repository(tmp_path / "runner-a"), repository(tmp_path / "runner-b")
    proc = start(a, shared_env(slow, a, pg_fresh), "apply", "--auto-approve")
    wait_for(lambda: batch_state(pg_fresh, "submitted") or proc.poll() is not None)
    proc.kill()
    proc.wait(timeout=10)
    assert not any(bt.finished for bt in slow.state.batches.values())  # still processing
    assert not (b / ".reconciler").exists()
    r = run(b, shared_env(slow, b, pg_fresh), "apply", "--auto-approve")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "from an earlier run is still" in r.stderr  # B tracked A's batch
    assert sum(1 for w in slow.state.writes if w["api"] == "orion") == 1
    assert all(slow.state.ticket_count(t) == 1 and slow.state.ticket_posts[t] == 1 for t in TICKETS)
    check = run(b, shared_env(slow, b, pg_fresh), "plan", "--detailed-exitcode")
    assert check.returncode == 0, check.stdout[-2000:]


@pytest.mark.slow
def test_a_second_apply_waits_then_refuses_naming_the_holder_and_a_killed_holder_frees_it_fast(
    slow, tmp_path, pg_fresh
):
    a, b = repository(tmp_path / "laptop"), repository(tmp_path / "ci")
    holder = start(a, shared_env(slow, a, pg_fresh), "apply", "--auto-approve")
    wait_for(lambda: batch_state(pg_fresh, "submitted"))
    started = time.monotonic()
    second = run(b, shared_env(slow, b, pg_fresh), "apply", "--auto-approve", "--lock-timeout", "2")
    waited = time.monotonic() - started
    assert second.returncode == 1 and waited >= 2
    assert f"pid {holder.pid} on" in second.stderr and "waiting up to 2 s for the workspace lease" in second.stderr
    status = json.loads(run(b, shared_env(slow, b, pg_fresh), "lock", "status", "--json").stdout)
    (lease,) = status["leases"]
    assert status["backend"] == "postgresql" and lease["alive"] and lease["pid"] == holder.pid
    assert lease["heartbeat"] and lease["started"] and lease["command"].startswith("reconciler apply")
    refused = run(b, shared_env(slow, b, pg_fresh), "lock", "release")
    assert refused.returncode == 1 and "never released" in refused.stderr
    # an operator's shell with the database URL alone (no vendor URLs) still sees every holder
    bare = {k: v for k, v in shared_env(slow, b, pg_fresh).items() if not k.endswith("_BASE_URL")}
    everyone = run(tmp_path, bare, "lock", "status", "--json")
    assert everyone.returncode == 0, everyone.stderr
    assert [x["pid"] for x in json.loads(everyone.stdout)["leases"]] == [holder.pid]

    holder.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    holder.wait(timeout=10)
    with psycopg.connect(pg_fresh, autocommit=True) as conn:
        key = conn.execute("SELECT 1").fetchone()  # a connection of our own to poll the lock with
        assert key
        from reconciler.state.postgres import _lock_key

        wait_for(
            lambda: conn.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(lease["workspace"]),)).fetchone()[0],
            timeout=15,
        )
        freed = time.monotonic() - killed
        conn.execute("SELECT pg_advisory_unlock_all()")
    print(f"\nkilled holder's lease free after {freed * 1000:.0f} ms")
    assert freed < 5
    after = json.loads(run(b, shared_env(slow, b, pg_fresh), "lock", "status", "--json").stdout)
    assert after["leases"] and not after["leases"][0]["alive"]  # the record stays, marked dead
    assert run(b, shared_env(slow, b, pg_fresh), "lock", "release").returncode == 0
    assert json.loads(run(b, shared_env(slow, b, pg_fresh), "lock", "status", "--json").stdout)["leases"] == []
    r = run(b, shared_env(slow, b, pg_fresh), "apply", "--auto-approve")  # no flag, from the other directory
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.slow
def test_plan_warns_while_an_apply_runs(slow, tmp_path, pg_fresh):
    a, b = repository(tmp_path / "a"), repository(tmp_path / "b")
    holder = start(a, shared_env(slow, a, pg_fresh), "apply", "--auto-approve")
    try:
        wait_for(lambda: batch_state(pg_fresh, "submitted"))
        r = run(b, shared_env(slow, b, pg_fresh), "plan", "--detailed-exitcode")
        assert "an apply of this workspace is running" in r.stderr
        assert "left out of this plan" in r.stderr and r.returncode == 2  # its batch is in flight: kept out
    finally:
        holder.wait(timeout=60)


@pytest.mark.slow
def test_unrelated_workspaces_never_block_each_other(slow, tmp_path, pg_fresh):
    """Two manifests roots are two workspaces: one's lease (held for a 5 s batch) never blocks the other."""
    a = repository(tmp_path / "a")
    env = shared_env(slow, a, pg_fresh)
    holder = start(a, env, "apply", "manifests/registrations", "manifests/templates", "--auto-approve")
    wait_for(lambda: batch_state(pg_fresh, "submitted"))
    r = run(a, env, "apply", "manifests/trades", "--auto-approve", "--lock-timeout", "0")
    still_running = holder.poll() is None
    holder.wait(timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert still_running  # the second apply finished while the first still held its own lease
    assert holder.returncode == 0


def test_the_backend_password_appears_in_no_output_log_report_or_journal(sandbox, tmp_path, pg_fresh):
    a = repository(tmp_path / "a")
    env = shared_env(sandbox, a, pg_fresh)
    report = tmp_path / "report.json"
    texts = []
    for args in (
        ["plan", "--debug"],
        ["apply", "--auto-approve", "--debug", "--report", str(report)],
        ["journal", "--json"],
        ["lock", "status", "--json"],
        ["lock", "status"],
        ["drift", "--debug"],
    ):
        p = run(a, env, *args)
        texts += [p.stdout, p.stderr]
    bad = {**env, "RECONCILER_BACKEND_URL": pg_fresh.replace(PG_PASSWORD, PG_PASSWORD + "-wrong")}
    p = run(a, bad, "apply", "--auto-approve", "--debug")
    assert p.returncode == 1 and "cannot connect to the state backend postgresql://****@127.0.0.1" in p.stderr
    texts += [p.stdout, p.stderr, report.read_text()]
    with psycopg.connect(pg_fresh, autocommit=True) as conn:
        for table in ("runs", "batches", "tickets", "leases", "resolutions", "meta"):
            texts.append(json.dumps(conn.execute(f"SELECT * FROM reconciler.{table}").fetchall(), default=str))
    blob = "\n".join(texts)
    assert "reconciler.http" in blob or "POST /v1/Trading" in blob  # the debug logs were on
    assert PG_PASSWORD not in blob


def test_a_schema_from_a_newer_reconciler_is_refused_before_any_write(sandbox, tmp_path, pg_fresh):
    a = repository(tmp_path / "a")
    from reconciler.config import Secret
    from reconciler.state.postgres import connect

    connect(Secret(pg_fresh)).close()  # creates the schema
    with psycopg.connect(pg_fresh, autocommit=True) as conn:
        conn.execute("UPDATE reconciler.meta SET value = '99' WHERE key = 'schema_version'")
    r = run(a, shared_env(sandbox, a, pg_fresh), "apply", "--auto-approve")
    assert r.returncode == 1 and "newer than this reconciler" in r.stderr
    assert sandbox.state.writes == []


def test_a_read_only_role_can_plan_and_read_lock_status(sandbox, tmp_path, pg_fresh):
    """The pull-request job's role may only SELECT: plan and lock status never create or change the schema."""
    a = repository(tmp_path / "a")
    with psycopg.connect(pg_fresh, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS planner")
        conn.execute("CREATE ROLE planner LOGIN PASSWORD 'planner-pw-77'")
    reader = pg_fresh.replace(f"reconciler:{PG_PASSWORD}", "planner:planner-pw-77")
    r = run(a, shared_env(sandbox, a, reader), "plan")  # before any apply created the schema
    assert r.returncode == 0, r.stderr[-2000:]
    assert run(a, shared_env(sandbox, a, pg_fresh), "apply", "--auto-approve").returncode == 0
    with psycopg.connect(pg_fresh, autocommit=True) as conn:
        conn.execute("GRANT USAGE ON SCHEMA reconciler TO planner")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA reconciler TO planner")
    r = run(a, shared_env(sandbox, a, reader), "plan", "--detailed-exitcode")
    assert r.returncode == 0, r.stderr[-2000:]
    assert run(a, shared_env(sandbox, a, reader), "lock", "status", "--json").returncode == 0
