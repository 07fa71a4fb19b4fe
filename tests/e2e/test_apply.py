"""`reconciler apply` against the sandbox: minimal writes, convergence, stale plans, faults, the lock."""

from __future__ import annotations

import json

import pytest

from reconciler.manifests.schema import validate_instance
from reconciler.state.lock import WorkspaceLock
from reconciler.state.sqlite import SqliteJournal

from ..helpers.processes import ROOT
from ..helpers.sandbox import batch_posts, control, sei_holds_a_conflicting_ticket, ticket_posts
from ..helpers.state import journal_file
from ..helpers.trees import estate

pytestmark = pytest.mark.integration


def test_fault_free_apply_converges_and_a_fresh_plan_is_empty(env, cli, tmp_path):
    report = tmp_path / "report.json"
    r = cli("apply", "--auto-approve", "--report", str(report))
    assert r.code == 0, r
    assert "Apply: 6 applied, 0 failed, 0 unknown, 0 skipped; converged" in r.out
    assert (batch_posts(env), ticket_posts(env)) == (1, 3)
    doc = json.loads(report.read_text())
    assert validate_instance("apply-report.schema.json", doc) == [] and doc["converged"] is True
    again = cli("plan", "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out
    assert cli("apply", "--auto-approve").code == 0 and (batch_posts(env), ticket_posts(env)) == (1, 3)


@pytest.mark.parametrize("regs,changed", [(120, 101), (300, 250)])
def test_minimal_balanced_batches_and_one_post_per_missing_ticket(env, cli, tmp_path, regs, changed):
    path = estate(env, tmp_path, regs, 60, drift=changed / regs)
    drifted = sum(1 for i in range(regs) if i % round(regs / changed) == 0)
    r = cli("apply", path, "--auto-approve")
    assert r.code == 0, r.out[-3000:]
    sizes = sorted(len(w["registrationIds"]) for w in control(env, "GET", "/writes") if w["api"] == "orion")
    assert batch_posts(env) == -(-drifted // 100) == len(sizes) and max(sizes) - min(sizes) <= 1
    missing = sum(1 for n in range(60) if n % round(regs / changed) == 0)
    assert ticket_posts(env) == missing
    assert cli("plan", path, "--detailed-exitcode").code == 0


def test_partially_failed_batch_exits_3_and_names_the_file(env, cli, tmp_path):
    control(env, "PUT", "/faults", content="reject=31549@POST:*/process/batch")
    report = tmp_path / "r.json"
    r = cli("apply", "--auto-approve", "--report", str(report))
    assert r.code == 3
    assert "✗ failed   SleeveRegistration/chen-ira [batch" in r.out
    assert "model 36 is closed to new accounts" in r.out and "# manifests/registrations/east/chen-ira.yaml:3" in r.out
    assert "✓ applied  SleeveRegistration/sd-regname1" in r.out and "✓ applied  TradeInstruction/10000002" in r.out
    doc = json.loads(report.read_text())
    failed = [i for i in doc["items"] if i["status"] == "failed"]
    assert [(i["address"], i["source"]) for i in failed] == [
        ("SleeveRegistration/chen-ira", {"file": "manifests/registrations/east/chen-ira.yaml", "line": 3})
    ]
    assert doc["summary"] == {"applied": 5, "failed": 1, "unknown": 0, "skipped": 0}


def test_stale_saved_plan_is_refused_with_zero_writes(env, cli, tmp_path):
    plan = tmp_path / "p.plan"
    assert cli("plan", "--out", str(plan)).code == 0
    control(env, "PATCH", "/registrations/31549", json={"editedBy": "jdoe", "set": {"isDoNotTrade": True}})
    r = cli("apply", str(plan))
    assert r.code == 1 and "the saved plan is stale, so nothing was written" in r.err
    assert "SleeveRegistration/chen-ira: live state changed since the plan (edited by jdoe" in r.err
    assert control(env, "GET", "/counters")["writes"] == 0


def test_saved_plan_applies_when_fresh_and_manifest_edits_make_it_stale(env, cli, tmp_path, monkeypatch):
    plan = tmp_path / "p.plan"
    cli("plan", "--out", str(plan))
    renamed = tmp_path / "anything-else.json"
    plan.rename(renamed)  # a saved plan is known by its content, not its name
    r = cli("apply", str(renamed))
    assert r.code == 0, r
    assert "converged" in r.out

    tree = tmp_path / "tree"
    import shutil

    shutil.copytree(ROOT / "manifests", tree)
    cli("plan", str(tree), "--out", str(plan))
    (tree / "registrations" / "east" / "chen-ira.yaml").write_text(
        (tree / "registrations" / "east" / "chen-ira.yaml").read_text() + "  isActive: true\n"
    )
    r = cli("apply", str(plan))
    assert r.code == 1 and "the manifests changed since the plan was made" in r.err


def test_expired_plan_is_refused(env, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("RECONCILER_PLAN_EXPIRY_HOURS", "0")
    plan = tmp_path / "p.plan"
    cli("plan", "--out", str(plan))
    r = cli("apply", str(plan))
    assert r.code == 1 and "the plan expired at" in r.err and control(env, "GET", "/counters")["writes"] == 0


def test_conflict_blocks_apply_unless_excluded(env, cli):
    sei_holds_a_conflicting_ticket(env)
    r = cli("apply", "--auto-approve")
    assert r.code == 1 and "conflicts block apply" in r.err and "TradeInstruction/10000002" in r.err
    assert control(env, "GET", "/counters")["writes"] == 0
    r = cli("apply", "--auto-approve", "--exclude", "TradeInstruction/10000002")
    assert r.code == 0 and "5 applied" in r.out


def test_refuses_without_terminal_or_past_max_changes(env, cli):
    r = cli("apply")
    assert r.code == 1 and "pass --auto-approve" in r.err
    r = cli("apply", "--auto-approve", "--max-changes", "2")
    assert r.code == 1 and "more than --max-changes 2" in r.err
    assert control(env, "GET", "/counters")["writes"] == 0


def test_lock_names_a_live_holder_and_a_dead_holders_lock_needs_no_flag(env, cli, tmp_path):
    """A live holder refuses a second apply, named; a dead holder's file never needs --break-lock."""
    r = cli("plan")  # learn the workspace key: the first apply creates it
    assert cli("apply", "--auto-approve").code == 0
    lock_path = journal_file(tmp_path / "ws").parent / "lock"
    held = WorkspaceLock(lock_path, "reconciler apply (other)", "someone")
    held.acquire()
    r = cli("apply", "--auto-approve")
    assert r.code == 1 and "locked by a running apply: pid" in r.err and "reconciler apply (other)" in r.err
    r = cli("apply", "--auto-approve", "--break-lock")
    assert r.code == 1 and "locked by a running apply" in r.err  # a live holder is never broken
    held.release()
    lock_path.write_text(
        json.dumps(
            {
                "pid": 999999,
                "host": __import__("socket").gethostname(),
                "started": "2026-11-21T00:00:00",
                "command": "reconciler apply",
            }
        )
    )
    r = cli("apply", "--auto-approve")  # the label of a dead holder: the flock is free, no flag needed
    assert r.code == 0, r


# --- faults --------------------------------------------------------------------------------------


def test_429_storm_during_apply_still_converges(env, cli):
    control(env, "PUT", "/faults", content="429=0.3@*#12")
    r = cli("apply", "--auto-approve")
    assert r.code == 0, r
    stored = control(env, "GET", "/writes")
    assert [w["api"] for w in stored].count("orion") == 1 and [w["api"] for w in stored].count("sei") == 3
    assert all(
        control(env, "GET", f"/tickets/{t}/count") == {"rows": 1, "posts": 1} for t in (10000002, 10000003, 10000102)
    )
    assert control(env, "GET", "/faults")[0]["count"] == 0  # the whole storm was ridden out
    assert cli("plan", "--detailed-exitcode").code == 0


def test_5xx_on_submit_is_unknown_then_a_rerun_converges(env, cli):
    control(env, "PUT", "/faults", content="500@POST:*/process/batch#1")
    r = cli("apply", "--auto-approve")
    assert r.code == 3
    assert "? unknown  SleeveRegistration/chen-ira: the batch was sent but its answer was lost" in r.out
    assert "· skipped  TradeInstruction/10000002" in r.out and ticket_posts(env) == 0
    assert "absent from Orion's BatchProcessing list 3 s after it was sent" in r.out  # the evidence, named
    r = cli("apply", "--auto-approve")
    assert r.code == 0, r
    assert batch_posts(env) == 2  # the 500'd POST created no batch (the sandbox refused it before acting)


def test_dropped_ticket_answer_is_read_back_not_resent(env, cli):
    control(env, "PUT", "/faults", content="drop@POST:/v1/order/tradetickets#2")
    r = cli("apply", "--auto-approve")
    assert r.code == 0, r
    assert r.out.count("the answer was lost, but the read-back shows SEI has it") == 2
    assert ticket_posts(env) == 3
    for t in (10000002, 10000003, 10000102):
        assert control(env, "GET", f"/tickets/{t}/count") == {"rows": 1, "posts": 1}


def test_stuck_batch_is_unknown_and_a_rerun_tracks_the_same_batch(env, cli, monkeypatch, tmp_path):
    control(env, "PUT", "/faults", content="stuck@POST:*/process/batch#1")
    r = cli("apply", "--auto-approve", "--poll-timeout", "0.5")
    assert r.code == 3
    assert "had not ended after 0.5 s; a rerun keeps tracking this batch id" in r.out
    assert "· skipped  TradeInstruction/10000002" in r.out and batch_posts(env) == 1
    journal = SqliteJournal(journal_file(tmp_path / "ws"))
    (entry,) = journal.open_batches()
    journal.close()
    # released, the batch queues again for 2 s: the rerun finds it unfinished however slowly it starts
    # (with the tests' 0.2 s batches a busy machine let it end first), tracks it, then gates SEI on it
    control(env, "POST", "/batches/release?after=2")
    r = cli("apply", "--auto-approve")
    assert r.code == 0, r
    assert f"batch {entry.batch_id} from an earlier run is still" in r.err
    assert f"applied by an earlier run's batch (batch {entry.batch_id} Complete)" in r.out
    assert batch_posts(env) == 1  # the same batch, never resubmitted
    assert ticket_posts(env) == 3


def test_ticket_409_for_our_own_values_counts_as_applied_and_other_values_fail(sandbox, tmp_path):
    """Tickets that reach SEI between plan and send: ours (same values) is applied on 409, theirs fails."""
    from reconciler.apply.evaluator import Evaluator
    from reconciler.manifests import load_manifests
    from reconciler.plan.builder import build_plan
    from reconciler.plan.stages import build_stages
    from reconciler.plan.targeting import Targeting
    from reconciler.sandbox.demo import make_ticket_rows
    from reconciler.vendors import open_vendors
    from reconciler.vendors.reads import read_live_state

    from ..helpers.state import claims_for
    from ..helpers.vendors import settings_for

    settings = settings_for(sandbox)
    manifests = load_manifests([str(ROOT / "manifests")])
    targeting = Targeting(targets=("TradeInstruction/*",))
    with open_vendors(settings) as vendors:
        live = read_live_state(vendors, [], manifests.instructions, settings)
        plan = build_plan(manifests, live, targeting=targeting)
        bodies = {s.items[0]: s.body["data"] for s in plan.submissions}
        ours = bodies["TradeInstruction/10000002"]
        theirs = {**bodies["TradeInstruction/10000003"], "target": 1}
        control(sandbox, "POST", "/tickets", json={"rows": make_ticket_rows(ours, 3) + make_ticket_rows(theirs, 3)})
        journal = SqliteJournal(tmp_path / "j.db")
        result = Evaluator(vendors, journal, settings, manifests, claims=claims_for(tmp_path)).run(
            build_stages(plan), journal.begin_run("t")
        )
    by = {i.address: i for i in result.items}
    assert by["TradeInstruction/10000002"].status == "applied"
    assert "already at SEI with the same values (409 on send)" in by["TradeInstruction/10000002"].message
    assert (
        by["TradeInstruction/10000003"].status == "failed"
        and "target: 1 vs 300" in by["TradeInstruction/10000003"].message
    )
    assert by["TradeInstruction/10000102"].status == "applied"
    assert result.exit_code == 3
    assert [h[0] for h in journal.ticket_history(10000002)] == ["sending", "exists", "confirmed"]
