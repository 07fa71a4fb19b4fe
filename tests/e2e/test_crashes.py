"""Crashes: SIGKILL of a real apply process at several points, a drained Ctrl-C, and secrets under --debug.

Invariants: nothing lost (a rerun converges and a fresh plan is empty), nothing sent twice (every
tradeTicketId is stored once), and a batch left in flight is tracked by id, never resubmitted.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.sandbox.demo import demo_state
from reconciler.sandbox.server import start_sandbox
from reconciler.sandbox.state import SandboxState, SandboxTiming

from ..helpers.processes import ROOT, sandbox_env
from ..helpers.sandbox import quiet, wait_for
from ..helpers.state import journal_file
from ..helpers.state import journal_has as _journal_has

pytestmark = pytest.mark.integration


def journal_has(ws: Path, sql: str) -> bool:
    return _journal_has(journal_file(ws), sql)


KILL_POINTS = {
    # a batch submitted and being polled: the journal knows its id
    "polling-a-batch": (
        "stuck@POST:*/process/batch#1",
        lambda db, sb: journal_has(db, "SELECT 1 FROM batches WHERE state='submitted'"),
    ),
    # the batch POST was accepted but its answer (the id) has not come back
    "batch-answer-pending": (
        "slow=3@POST:*/process/batch#1",
        lambda db, sb: (
            journal_has(db, "SELECT 1 FROM batches WHERE state='submitting'")
            and any(w["api"] == "orion" for w in sb.state.writes)
        ),
    ),
    # a ticket stored by SEI whose answer has not come back
    "ticket-answer-pending": (
        "slow=3@POST:/v1/order/tradetickets#1",
        lambda db, sb: any(w["api"] == "sei" for w in sb.state.writes),
    ),
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_sigkill_then_rerun_converges_without_resending(point, tmp_path):
    faults, ready = KILL_POINTS[point]
    state = SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=0.3))
    with start_sandbox(state, faults=faults) as sb:
        env = sandbox_env(sb, workspace=tmp_path / "ws")
        db = tmp_path / "ws"
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", "--auto-approve"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: ready(db, sb) or proc.poll() is not None)
            assert proc.poll() is None, proc.communicate()
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        batches_before = sum(1 for w in sb.state.writes if w["api"] == "orion")
        sb.faults.set([])
        sb.state.release_stuck(after=2)  # the stuck batch runs 2 s more: the rerun meets it still processing
        rerun = subprocess.run(
            [sys.executable, "-m", "reconciler", "apply", "--auto-approve"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
        assert "recovered:" in rerun.stderr or "in doubt:" in rerun.stderr
        if point == "polling-a-batch":
            assert "from an earlier run is still" in rerun.stderr  # tracked while it ran, not found ended
        if point == "batch-answer-pending":  # the id was lost with the process: found again, never resent
            assert "found in Orion's BatchProcessing list" in rerun.stderr
        quiet(sb)
        orion_writes = sum(1 for w in sb.state.writes if w["api"] == "orion")
        assert orion_writes == batches_before == 1  # the batch in flight was tracked, never resubmitted
        for ticket in (10000002, 10000003, 10000102):
            assert sb.state.ticket_count(ticket) == 1 and sb.state.ticket_posts[ticket] == 1
        check = subprocess.run(
            [sys.executable, "-m", "reconciler", "plan", "--detailed-exitcode"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stdout
        # the killed run's sends are in the history too, from its journal, beside the rerun's own records
        history = subprocess.run(
            [sys.executable, "-m", "reconciler", "history", "--format", "json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        records = json.loads(history.stdout)
        killed = [r for r in records if r["run"] == 1]
        assert killed and all("run 1 (started" in r["message"] for r in killed), records
        assert {r["address"] for r in killed} >= {"SleeveRegistration/okafor-trust", "SleeveRegistration/sd-regname1"}
        assert all(r["recorded_later"] for r in killed)
        verify = subprocess.run(
            [sys.executable, "-m", "reconciler", "history", "verify"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert verify.returncode == 0, verify.stderr


@pytest.mark.slow
def test_sigint_drains_in_flight_and_a_second_sigint_exits_at_once(tmp_path):
    """First Ctrl-C: no new submissions, those in flight finish and are journaled; second: exit now."""
    state = SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=0.2))
    with start_sandbox(state, faults="slow=1.5@POST:/v1/order/tradetickets") as sb:
        env = sandbox_env(sb, workspace=tmp_path / "ws", RECONCILER_PARALLELISM="1")
        cmd = [sys.executable, "-m", "reconciler", "apply", "--auto-approve"]
        report = tmp_path / "report.json"
        first = [*cmd, "--report", str(report)]
        proc = subprocess.Popen(first, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: bool(sb.state.ticket_posts) or proc.poll() is not None)  # a ticket POST is in flight
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err[-2000:]
        assert "Ctrl-C: no new submissions; waiting for those in flight" in err
        assert "interrupted (Ctrl-C or SIGTERM)" in out and "skipped" in out
        assert sum(sb.state.ticket_posts.values()) == 1  # the one in flight finished; no new one started
        items = json.loads(report.read_text())["items"]
        applied = [i for i in items if i["address"].startswith("TradeInstruction/") and i["status"] == "applied"]
        assert len(applied) == 1

        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: sum(sb.state.ticket_posts.values()) >= 2 or proc.poll() is not None)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        assert proc.returncode == 130 and time.monotonic() - started < 1.0
        sb.faults.set([])
        rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert all(n == 1 for n in sb.state.ticket_posts.values()) and len(sb.state.ticket_posts) == 3


@pytest.mark.slow
def test_sigint_sends_no_batch_that_was_waiting_for_its_slot(tmp_path):
    """One batch at a time, each 3 s at Orion; the next one is read fresh and waits for the slot. Ctrl-C
    while the first is at Orion: it finishes and is journaled; the waiting one is skipped, never POSTed."""
    state = SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=3.0))
    with start_sandbox(state) as sb:
        env = sandbox_env(sb, workspace=tmp_path / "ws", RECONCILER_PARALLELISM="1", RECONCILER_BATCH_SIZE="1")
        report = tmp_path / "report.json"
        cmd = [sys.executable, "-m", "reconciler", "apply", "--auto-approve", "--report", str(report)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        batches = lambda: [w for w in sb.state.writes if w["api"] == "orion"]  # noqa: E731
        wait_for(lambda: bool(batches()) or proc.poll() is not None)  # the first batch is at Orion
        time.sleep(0.5)  # the next batch has been read fresh and waits for the slot
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err[-2000:]
        assert len(batches()) == 1  # the one at Orion finished; the waiting one never left
        items = {i["address"]: i for i in json.loads(report.read_text())["items"]}
        regs = [i for a, i in items.items() if a.startswith("SleeveRegistration/")]
        assert sum(i["status"] == "applied" for i in regs) == 1
        assert all(i["status"] == "skipped" for i in regs if i["status"] != "applied"), regs


def test_no_secret_reaches_any_output_even_with_debug(tmp_path):
    """Canary credentials: --debug logs, plan, saved plan, apply report, drift and errors stay clean."""
    from reconciler.sandbox.app import SandboxCredentials

    creds = SandboxCredentials(
        orion_token="canary-orion-7f1e2d", sei_token="canary-sei-9a8b7c", sei_app_key="canary-appkey-3c4d5e"
    )
    with start_sandbox(SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=0.2)), creds) as sb:
        env = sandbox_env(sb, workspace=tmp_path / "ws")
        texts = []
        for args in (
            ["plan", "--debug", "--out", str(tmp_path / "p.json")],
            ["apply", str(tmp_path / "p.json"), "--debug", "--report", str(tmp_path / "r.json")],
            ["drift", "--debug", "--format", "json"],
        ):
            p = subprocess.run(
                [sys.executable, "-m", "reconciler", *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            texts += [p.stdout, p.stderr]
        wrong = {**env, "ORION_TOKEN": "canary-wrong-token-4e4e"}
        p = subprocess.run(
            [sys.executable, "-m", "reconciler", "plan", "--debug"],
            cwd=ROOT,
            env=wrong,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode == 1 and "HTTP 401" in p.stderr and "Traceback" in p.stderr  # --debug shows it
        texts += [p.stdout, p.stderr, (tmp_path / "p.json").read_text(), (tmp_path / "r.json").read_text()]
        blob = "\n".join(texts)
        assert "reconciler.http" in blob or "POST /v1/Trading" in blob  # debug request logs were on
        for secret in ("canary-orion-7f1e2d", "canary-sei-9a8b7c", "canary-appkey-3c4d5e", "canary-wrong-token-4e4e"):
            assert secret not in blob
