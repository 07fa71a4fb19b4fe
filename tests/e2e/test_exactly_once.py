"""Exactly-once apply under the worst realistic timing (issue 11): batches of several seconds, servers
that commit after the client gave up, answers lost after the server acted, kills at journal steps.

Invariants checked by every test: no tradeTicketId POSTed twice, no registration in two open batches,
no exit 0 while anything is in doubt, and the rerun as printed converges with no flag.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from reconciler.sandbox.demo import demo_state
from reconciler.sandbox.faults import parse_faults
from reconciler.sandbox.server import start_sandbox
from reconciler.sandbox.state import SandboxState, SandboxTiming
from reconciler.state.journal import BatchState, TicketEvent
from reconciler.state.sqlite import SqliteJournal
from reconciler.state.workspace import workspace_for

from ..helpers.invariants import assert_converged_now, assert_tickets_after_batches
from ..helpers.invariants import assert_exactly_once as _exactly_once
from ..helpers.processes import ROOT, apply_reported, reconciler, sandbox_env, start
from ..helpers.sandbox import orion_batches, wait_for
from ..helpers.state import journal_file, journal_holds

pytestmark = pytest.mark.integration

TICKETS = (10000002, 10000003, 10000102)


def slow_env(sb, tmp_path, **extra) -> dict[str, str]:
    return sandbox_env(sb, workspace=tmp_path / "ws", **{"RECONCILER_POLL_TIMEOUT": "60", **extra})


def assert_exactly_once(sb) -> None:
    _exactly_once(sb, TICKETS)


def journal_state(tmp_path: Path, state: str) -> bool:
    return journal_holds(journal_file(tmp_path / "ws"), state)


# --- a ticket committed after the client gave up --------------------------------------------------


@pytest.mark.slow
def test_a_ticket_committed_after_the_client_gave_up_is_never_posted_twice(slow, tmp_path):
    """The POST times out (2 s), SEI commits it at 4 s: read-backs over the settle window find it."""
    slow.faults.set([])
    slow.faults.add(parse_faults("late=4@POST:/v1/order/tradetickets#1"))
    env = slow_env(slow, tmp_path, RECONCILER_SETTLE_WINDOW="6")
    r, items = apply_reported(env, tmp_path / "report.json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "the answer was lost, but the read-back shows SEI has it" in [i["message"] for i in items.values()]
    assert_exactly_once(slow)
    journal = SqliteJournal(journal_file(tmp_path / "ws"))
    histories = [[e for e, _ in journal.ticket_history(t)] for t in TICKETS]
    journal.close()
    assert ["sending", "in-doubt", "confirmed"] in histories  # never: sending, unknown, absent, sending
    assert_converged_now(env)


# --- a batch whose answer is lost while it goes on processing ----------------------------------------


@pytest.mark.slow
def test_a_lost_batch_answer_is_found_and_tracked_not_resubmitted(slow, tmp_path):
    """Orion processes the batch (5 s), the answer is dropped: the same run finds it in the
    BatchProcessing list, tracks it to its end, gates SEI on it, and converges with one POST."""
    slow.faults.add(parse_faults("drop@POST:*/process/batch#1"))
    env = slow_env(slow, tmp_path)
    r = reconciler(env, "apply", "--auto-approve")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "found in Orion's BatchProcessing list" in r.stderr
    assert len(orion_batches(slow)) == 1
    assert_exactly_once(slow)
    assert_tickets_after_batches(slow)
    assert_converged_now(env)


@pytest.mark.slow
def test_killed_after_a_lost_batch_answer_the_rerun_tracks_that_batch(slow, tmp_path):
    """SIGKILL after the batch POST timed out (the server commits it later, then processes it for
    5 s): the rerun, at once, finds the batch, waits for it, and only then sends tickets."""
    slow.faults.add(parse_faults("late=3@POST:*/process/batch#1"))
    # the batch is committed 3 s after its POST: the settle window (8 s) leaves room to find it, where
    # a window equal to the hold passed on a few milliseconds of margin
    env = slow_env(slow, tmp_path, RECONCILER_SETTLE_WINDOW="8")
    proc = start(env, "apply", "--auto-approve")
    wait_for(lambda: journal_state(tmp_path, "in-doubt"))
    proc.kill()
    proc.wait(timeout=10)
    assert not any(b.finished for b in slow.state.batches.values())  # not even created, or processing
    r, items = apply_reported(env, tmp_path / "report.json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "found in Orion's BatchProcessing list" in r.stderr
    assert any("applied by an earlier run's batch" in i["message"] for i in items.values())
    assert len(orion_batches(slow)) == 1
    assert_exactly_once(slow)
    assert_tickets_after_batches(slow)
    assert_converged_now(env)


# --- the gate holds for an earlier run's batch -----------------------------------------------------


@pytest.mark.slow
def test_a_rerun_gates_sei_on_an_earlier_runs_batch_and_never_exits_0_before_it_ends(slow, tmp_path):
    """A rerun that finds an earlier batch still processing tracks it: with too short a poll timeout
    it skips SEI and exits 3 (listing the registrations unknown); with enough, it converges."""
    env = slow_env(slow, tmp_path)
    proc = start(env, "apply", "--auto-approve")
    wait_for(lambda: journal_state(tmp_path, "submitted"))
    proc.kill()
    proc.wait(timeout=10)
    early = reconciler({**env, "RECONCILER_POLL_TIMEOUT": "0.5"}, "apply", "--auto-approve")
    assert early.returncode == 3, early.stdout[-3000:]
    assert "converged" not in early.stdout.split("Apply:")[-1].replace("NOT converged", "")
    assert early.stdout.count("? unknown  SleeveRegistration/") == 3
    assert "1 batch(es) from an earlier run have not ended" in early.stdout
    assert not slow.state.ticket_posts  # the SEI wave waited
    r = reconciler(env, "apply", "--auto-approve")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert len(orion_batches(slow)) == 1
    assert_exactly_once(slow)
    assert_tickets_after_batches(slow)
    assert_converged_now(env)


# --- a 200 that cannot be read is in doubt, never a refusal ------------------------------------------


@pytest.mark.slow
def test_an_unreadable_200_to_a_batch_is_in_doubt_and_the_batch_is_found(slow, tmp_path):
    slow.faults.add(parse_faults("garble@POST:*/process/batch#1"))
    env = slow_env(slow, tmp_path)
    r = reconciler(env, "apply", "--auto-approve")
    assert "refused" not in r.stdout
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "found in Orion's BatchProcessing list" in r.stderr
    assert len(orion_batches(slow)) == 1
    assert_exactly_once(slow)
    assert_tickets_after_batches(slow)


@pytest.mark.slow
def test_an_unreadable_200_to_a_ticket_is_read_back_never_called_a_refusal(slow, tmp_path):
    slow.faults.add(parse_faults("garble=json@POST:/v1/order/tradetickets#1"))
    env = slow_env(slow, tmp_path)
    r, items = apply_reported(env, tmp_path / "report.json")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "SEI refused" not in r.stdout
    assert "the answer was lost, but the read-back shows SEI has it" in [i["message"] for i in items.values()]
    assert_exactly_once(slow)


# --- nothing unreported ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_malformed_errors_body_still_reports_every_item_and_writes_the_report(slow, tmp_path):
    slow.faults.add(parse_faults("reject=31549@POST:*/process/batch,garble=json@GET:*/Errors"))
    env = slow_env(slow, tmp_path)
    report = tmp_path / "report.json"
    r = reconciler(env, "apply", "--auto-approve", "--report", str(report))
    assert r.returncode == 3, r.stdout[-3000:] + r.stderr[-2000:]
    assert "internal error" not in r.stderr
    doc = json.loads(report.read_text())
    assert {i["address"] for i in doc["items"]} >= {
        "SleeveRegistration/chen-ira",
        "SleeveRegistration/okafor-trust",
        "SleeveRegistration/sd-regname1",
    }
    chen = next(i for i in doc["items"] if i["address"] == "SleeveRegistration/chen-ira")
    assert chen["status"] in ("failed", "unknown") and "errors could not be read" in chen["message"]
    assert sum(doc["summary"].values()) == len(doc["items"]) == 6
    assert oct(report.stat().st_mode & 0o777) == "0o600"


def test_a_report_into_a_missing_folder_is_refused_before_any_write(slow, tmp_path):
    env = slow_env(slow, tmp_path)
    r = reconciler(env, "apply", "--auto-approve", "--report", str(tmp_path / "no-such-dir" / "r.json"))
    assert r.returncode == 1 and "does not exist" in r.stderr
    assert slow.state.writes == []


class _FailingJournal(SqliteJournal):
    """A journal whose disk fails right after a ticket was sent (a database error mid-run)."""

    def ticket_event(self, run_id, ticket_id, address, event, detail=None):
        if event == TicketEvent.SENT:
            import sqlite3

            raise sqlite3.OperationalError("disk I/O error")
        return super().ticket_event(run_id, ticket_id, address, event, detail)


@pytest.mark.parametrize("what", ["database error after a send", "bug while re-reading a batch"])
def test_whatever_escapes_inside_apply_ends_every_item_reported(sandbox, tmp_path, what):
    from reconciler.apply.evaluator import Evaluator
    from reconciler.manifests import load_manifests
    from reconciler.plan.builder import build_plan
    from reconciler.plan.stages import build_stages
    from reconciler.vendors import open_vendors
    from reconciler.vendors.reads import read_live_state

    from ..helpers.state import claims_for
    from ..helpers.vendors import settings_for

    settings = settings_for(sandbox)
    manifests = load_manifests([str(ROOT / "manifests")])
    journal = (_FailingJournal if what.startswith("database") else SqliteJournal)(tmp_path / "j.db")
    with open_vendors(settings) as vendors:
        live = read_live_state(vendors, manifests.registrations, manifests.instructions, settings)
        plan = build_plan(manifests, live)
        if what.startswith("bug"):
            fresh_read = vendors.orion.list_with_sleeves
            calls = []

            def broken(ids, **kw):  # the read just before the batch works; the re-read after it hits the bug
                calls.append(ids)
                if len(calls) == 1:
                    return fresh_read(ids, **kw)
                raise TypeError("'NoneType' object is not subscriptable")

            vendors.orion.list_with_sleeves = broken
        result = Evaluator(vendors, journal, settings, manifests, claims=claims_for(tmp_path)).run(
            build_stages(plan), journal.begin_run("t")
        )
    statuses = {i.address: i.status.value for i in result.items}
    assert len(statuses) == 6 and result.exit_code == 3 and not result.converged
    regs = [s for a, s in statuses.items() if a.startswith("SleeveRegistration/")]
    tickets = [statuses[f"TradeInstruction/{t}"] for t in TICKETS]
    if what.startswith("database"):
        assert regs == ["applied"] * 3
        assert tickets == ["unknown"] * 3  # they were sent: unknown, never "skipped"
        assert all(journal.why_not_send(t) for t in TICKETS)  # in doubt: never sent again blindly
        assert all("disk I/O error" in i.message for i in result.items if i.address.startswith("Trade"))
    else:
        # the batch ended (journaled), so the gate opened as for any ended batch; its items are unknown
        assert regs == ["unknown"] * 3 and tickets == ["applied"] * 3
        assert all("TypeError" in i.message for i in result.items if i.address.startswith("Sleeve"))
        # the confirming read reads the tickets (the registrations were read after their batch): no error,
        # and still no exit 0 while the registrations are unknown
        assert result.error is None and result.exit_code == 3
    journal.close()


# --- signals at journal steps: the rerun as printed converges with no flag ---------------------------

KILLS = {
    "batch journaled, answer pending": (
        "late=2@POST:*/process/batch#1",
        lambda sb, ws: journal_state(ws, "submitting"),
    ),
    "batch polling": ("", lambda sb, ws: journal_state(ws, "submitted")),
    "batch in doubt, looking for it": ("late=3@POST:*/process/batch#1", lambda sb, ws: journal_state(ws, "in-doubt")),
    "ticket sent, answer pending": (
        "late=4@POST:/v1/order/tradetickets#1",
        lambda sb, ws: bool(sb.state.ticket_posts) or bool(sb.state.writes and ticket_journaled(ws)),
    ),
}


def ticket_journaled(ws: Path) -> bool:
    db = journal_file(ws / "ws")
    j = SqliteJournal.open_readonly(db) if db.exists() else None
    if j is None:
        return False
    try:
        return any(t.event == TicketEvent.SENDING for t in j.open_tickets())
    finally:
        j.close()


# SIGKILL at every journal step; SIGTERM and a double SIGINT where writes are in flight (polling a
# batch, a ticket's answer pending): those are the points where draining or exiting at once differ.
SIGNAL_CASES = [(point, "SIGKILL") for point in sorted(KILLS)] + [
    (point, how) for point in ("batch polling", "ticket sent, answer pending") for how in ("SIGTERM", "double SIGINT")
]


@pytest.mark.slow
@pytest.mark.parametrize("point,how", SIGNAL_CASES)
def test_signals_at_each_journal_step_then_the_rerun_converges_without_a_flag(slow, tmp_path, point, how):
    fault, ready = KILLS[point]
    if fault:
        slow.faults.add(parse_faults(fault))
    env = slow_env(slow, tmp_path, RECONCILER_SETTLE_WINDOW="6")
    proc = start(env, "apply", "--auto-approve")
    wait_for(lambda: ready(slow, tmp_path) or proc.poll() is not None)
    assert proc.poll() is None, proc.communicate()
    if how == "SIGKILL":
        proc.kill()
    elif how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if how == "SIGTERM":  # it drains: what was in flight finishes and is reported, nothing new starts
        assert proc.returncode == 3, err[-2000:]
        assert "SIGTERM: no new submissions" in err and "interrupted" in out
    elif how == "double SIGINT":
        assert proc.returncode == 130
    assert len(orion_batches(slow)) <= 1
    rerun = reconciler(env, "apply", "--auto-approve")  # exactly as the tool says: no --break-lock
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert len(orion_batches(slow)) == 1
    assert_exactly_once(slow)
    assert_tickets_after_batches(slow)
    assert_converged_now(env)


# --- journal housekeeping --------------------------------------------------------------------------


def test_a_journaled_batch_id_that_answers_404_fails_fast(sandbox, tmp_path):
    env = slow_env(sandbox, tmp_path, RECONCILER_POLL_TIMEOUT="60")
    ws = workspace_for((str(ROOT / "manifests"),), sandbox.orion_url, sandbox.sei_url, tmp_path / "ws")
    j = SqliteJournal(ws.journal_path)
    j.batch_submitting(1, "old", ("SleeveRegistration/chen-ira",), [31549])
    j.batch_state("old", BatchState.SUBMITTED, batch_id=424242)
    j.close()
    started = time.monotonic()
    r = reconciler(env, "apply", "--auto-approve")
    assert r.returncode == 0, r.stderr[-2000:]
    assert time.monotonic() - started < 20  # not the 60 s poll timeout
    assert "batch 424242 from an earlier run is unknown to Orion (404)" in r.stderr
    again = reconciler(env, "apply", "--auto-approve")
    assert "424242" not in again.stderr  # resolved once, not polled on every rerun


def test_sandbox_applies_use_a_workspace_of_their_own(tmp_path):
    env = {**os.environ, "RECONCILER_WORKSPACE": str(tmp_path / "ws"), "CI": "true"}
    r = reconciler(env, "apply", "--sandbox", "--auto-approve")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (tmp_path / "ws").exists()


def test_journal_lists_in_doubt_writes_and_records_a_resolution(sandbox, tmp_path):
    env = slow_env(sandbox, tmp_path)
    ws = workspace_for((str(ROOT / "manifests"),), sandbox.orion_url, sandbox.sei_url, tmp_path / "ws")
    j = SqliteJournal(ws.journal_path)
    j.ticket_event(1, 10000002, "TradeInstruction/10000002", TicketEvent.SENDING)
    j.ticket_event(1, 10000002, "TradeInstruction/10000002", TicketEvent.IN_DOUBT, "ReadTimeout")
    j.close()
    listed = reconciler(env, "journal", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["kind"] == "ticket" and entry["key"] == "10000002" and entry["state"] == "in-doubt"
    plan = reconciler(env, "plan", "--detailed-exitcode")
    assert plan.returncode == 2 and "left out of this plan" in plan.stderr
    assert "TradeInstruction/10000002" not in plan.stdout.split("Apply runs")[0].replace(
        "! TradeInstruction/10000002", ""
    )
    r = reconciler(
        env,
        "journal",
        "resolve",
        "ticket",
        "10000002",
        "--as",
        "absent",
        "--reason",
        "SEI support confirmed it never arrived",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(reconciler(env, "journal", "--json").stdout) == []
    j = SqliteJournal(ws.journal_path)
    ((kind, key, outcome, reason, who, at),) = j.resolutions()
    j.close()
    assert (kind, key, outcome) == ("ticket", "10000002", "absent") and "never arrived" in reason and who


# --- saved plans are receipts ------------------------------------------------------------------------


def test_an_edited_saved_plan_is_refused_with_zero_writes(sandbox, tmp_path):
    env = slow_env(sandbox, tmp_path)
    plan = tmp_path / "p.json"
    assert reconciler(env, "plan", "--out", str(plan)).returncode == 0
    doc = json.loads(plan.read_text())
    for s in doc["submissions"]:
        if s["api"] == "sei" and s["items"] == ["TradeInstruction/10000003"]:
            s["body"]["data"]["target"] = 5500
    for c in doc["changes"]:
        if c["address"] == "TradeInstruction/10000003":
            c["payload"]["data"]["target"] = 5500
    plan.write_text(json.dumps(doc))
    r = reconciler(env, "apply", str(plan))
    assert r.returncode == 1, r.stdout[-2000:]
    assert "TradeInstruction/10000003: the saved plan's request body differs" in r.stderr
    assert sandbox.state.writes == []


def test_a_plan_made_against_other_endpoints_is_refused_with_zero_writes(sandbox, tmp_path):
    plan = tmp_path / "p.json"
    state = SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=0.2))
    with start_sandbox(state) as other:
        assert reconciler(slow_env(other, tmp_path), "plan", "--out", str(plan)).returncode == 0
    r = reconciler(slow_env(sandbox, tmp_path), "apply", str(plan))
    assert r.returncode == 1 and "the saved plan is for other endpoints" in r.stderr
    assert f"not {sandbox.orion_url}" in r.stderr
    assert sandbox.state.writes == []
