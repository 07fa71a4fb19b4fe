"""Apply as it behaves at estate scale, tried on the demo tree with the worst realistic timing (#29):
bodies read fresh just before each batch, writes in doubt settled beside the wave, logs that fit CI."""

from __future__ import annotations

import json
import time

import pytest

from reconciler.sandbox.demo import demo_state
from reconciler.sandbox.faults import parse_faults
from reconciler.sandbox.server import start_sandbox
from reconciler.sandbox.state import SandboxState, SandboxTiming

from ..helpers.invariants import assert_converged_now
from ..helpers.processes import apply_reported, reconciler, sandbox_env, start
from ..helpers.sandbox import edit_outside_git, orion_batches, quiet, ticket_posts, wait_for

pytestmark = pytest.mark.integration


def _saved_plan_in_batches_of_one(sb, tmp_path):
    """Apply's settings for one batch of one registration at a time, and the plan saved with them: (env,
    the saved plan's path, its JSON, the addresses of its Orion batches in order)."""
    env = sandbox_env(sb, workspace=tmp_path / "ws", RECONCILER_PARALLELISM="1", RECONCILER_BATCH_SIZE="1")
    saved = tmp_path / "plan.json"
    assert reconciler(env, "plan", "--out", str(saved)).returncode == 0
    doc = json.loads(saved.read_text())
    return env, saved, doc, [s["items"][0] for s in doc["submissions"] if s["api"] == "orion"]


@pytest.mark.slow
def test_a_registration_edited_after_the_plan_and_before_its_batch_is_not_overwritten(tmp_path):
    """plan --out; apply it one batch of one at a time; while the first batch processes, someone edits the
    registration of the last batch in Orion's UI. Its batch reads it fresh, finds it changed, and leaves it
    out: reported stale by name, the others apply, exit 3, and the next plan shows it."""
    state = SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=2.0))
    with start_sandbox(state) as sb:
        env, saved, doc, batches = _saved_plan_in_batches_of_one(sb, tmp_path)
        assert len(batches) >= 3
        last = next(c for c in doc["changes"] if c["address"] == batches[-1])
        rid = last["registration_id"]

        report = tmp_path / "report.json"
        proc = start(env, "apply", str(saved), "--report", str(report))
        wait_for(lambda: len(orion_batches(sb)) >= 1 or proc.poll() is not None)  # the first batch is in
        assert proc.poll() is None and len(orion_batches(sb)) == 1  # the last batch is still ahead
        edited = edit_outside_git(sb, rid, "jdoe", set={"isDoNotTrade": True})
        out, err = proc.communicate(timeout=120)
        quiet(sb)

        assert proc.returncode == 3, out[-2000:] + err[-2000:]
        items = {i["address"]: i for i in json.loads(report.read_text())["items"]}
        stale = items[batches[-1]]
        assert stale["status"] == "failed"
        assert stale["message"].startswith("stale: changed in Orion since the plan (edited by jdoe at")
        assert f"✗ failed   {batches[-1]}" in out  # named in the log too
        assert all(items[a]["status"] == "applied" for a in batches[:-1])
        assert all(i["status"] == "applied" for a, i in items.items() if a.startswith("TradeInstruction/"))
        sent = [w["registrationIds"] for w in orion_batches(sb)]
        assert [rid] not in sent and len(sent) == len(batches) - 1  # never sent: the edit stands
        assert sb.state.registrations[rid]["isDoNotTrade"] is True and sb.state.registrations[rid] == edited

        again = reconciler(env, "plan", "--format", "json")
        assert again.returncode == 0, again.stderr[-2000:]
        assert [c["address"] for c in json.loads(again.stdout)["changes"] if c["action"] != "no-op"] == [batches[-1]]


@pytest.mark.slow
def test_a_fresh_read_that_waited_long_for_its_slot_is_read_again_before_the_post(tmp_path):
    """Batches are read fresh before they get a slot, while others are at Orion. One at a time, the first
    batch takes 7 s; the second was read fresh at once and waits for its slot; then its registration is
    edited in Orion's UI. Having waited longer than FRESH_FOR_SECONDS (5 s), it is read again before the
    POST: stale, not sent, the edit stands. (Without the second read the edit is overwritten.)"""
    state = SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=7.0))
    with start_sandbox(state) as sb:
        env, saved, doc, batches = _saved_plan_in_batches_of_one(sb, tmp_path)
        rid_of = {c["address"]: c["registration_id"] for c in doc["changes"] if c["address"] in batches}

        report = tmp_path / "report.json"
        proc = start(env, "apply", str(saved), "--report", str(report))
        wait_for(lambda: len(orion_batches(sb)) >= 1 or proc.poll() is not None)  # one batch is at Orion
        time.sleep(1.5)  # the other worker's fresh read of the next batch (milliseconds) is long done
        # two workers took the first two batches; whichever got the slot first, the other one waits
        first = orion_batches(sb)[0]["registrationIds"]
        waiting = next(a for a in batches[:2] if [rid_of[a]] != first)
        rid = rid_of[waiting]
        edit_outside_git(sb, rid, "jdoe", set={"isDoNotTrade": True})
        assert proc.poll() is None and len(orion_batches(sb)) == 1  # edited while it waited for its slot
        out, err = proc.communicate(timeout=120)
        quiet(sb)

        assert proc.returncode == 3, out[-2000:] + err[-2000:]
        stale = {i["address"]: i for i in json.loads(report.read_text())["items"]}[waiting]
        assert stale["status"] == "failed" and stale["message"].startswith("stale: changed in Orion since the plan")
        assert [rid] not in [w["registrationIds"] for w in orion_batches(sb)]
        assert sb.state.registrations[rid]["isDoNotTrade"] is True


@pytest.mark.slow
def test_a_batch_held_in_processing_for_60_s_adds_at_most_3_lines_to_a_ci_log(tmp_path):
    """The same apply twice in CI: once as usual, once with a batch stuck in Processing for 60 s. Polls
    print nothing in a log; a heartbeat every 30 s says the run is alive."""

    def run(stuck_for: float) -> list[str]:
        state = SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=0.3))
        with start_sandbox(state, faults="stuck@POST:*/process/batch#1" if stuck_for else None) as sb:
            env = sandbox_env(sb, ci=True, workspace=tmp_path / f"ws-{stuck_for:g}")
            proc = start(env, "apply", "--auto-approve")
            if stuck_for:
                wait_for(lambda: bool(orion_batches(sb)) or proc.poll() is not None)
                time.sleep(stuck_for)
                sb.state.release_stuck()
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, out[-2000:] + err[-2000:]
            return (out + err).splitlines()

    usual, held = run(0), run(60)
    added = len(held) - len(usual)
    assert added <= 3, "\n".join(held)
    assert sum("apply: " in ln and " done, " in ln and "ETA" in ln for ln in held) >= 1  # the heartbeat


@pytest.mark.slow
def test_one_ticket_in_doubt_does_not_hold_up_the_others(tmp_path):
    """Parallelism 1, a 20 s settle window: SEI holds the first ticket POST 5 s, past the client's time-out,
    then commits it. The other two go out while it is read back beside the wave, so SEI stores them before
    the held one; inside the worker, as before, they waited for its read-back and came after it."""
    state = SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=0.2))
    with start_sandbox(state) as sb:
        env = sandbox_env(sb, workspace=tmp_path / "ws", RECONCILER_PARALLELISM="1", RECONCILER_SETTLE_WINDOW="20")
        sb.faults.add(parse_faults("late=5@POST:/v1/order/tradetickets#1"))
        r, items = apply_reported(env, tmp_path / "report.json")
        quiet(sb)  # the held request has landed before anything is counted
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        stored = [w["tradeTicketId"] for w in sb.state.writes if w["api"] == "sei"]
        assert len(stored) == 3 and set(sb.state.ticket_posts.values()) == {1}  # each once; none re-sent
        held = f"TradeInstruction/{stored[-1]}"  # stored last: the one in doubt, though it was sent first
        assert items[held]["message"] == "the answer was lost, but the read-back shows SEI has it"
        assert all(i["message"] == "accepted by SEI" for a, i in items.items() if a.startswith("Trade") and a != held)
        assert_converged_now(env)


@pytest.mark.slow
def test_a_ticket_in_doubt_on_both_sends_costs_one_window_and_the_rerun_settles_it(sandbox, tmp_path):
    """SEI answers both POSTs of one ticket 503 without storing it. The first answer in doubt is read back
    over the whole settle window (8 s) before the one re-send; the re-send's lost answer is read back for a
    quarter of it only (a third send never follows in this run), so the run spends one window in doubt,
    not two, and ends unknown (exit 3). The rerun settles it by the journal's rules, then sends it: three
    POSTs in all, stored once."""
    env = sandbox_env(sandbox, workspace=tmp_path / "ws", RECONCILER_SETTLE_WINDOW="8")
    sandbox.faults.add(parse_faults("503=none@POST:/v1/order/tradetickets#2"))
    started = time.monotonic()
    r, items = apply_reported(env, tmp_path / "r1.json", "--target", "TradeInstruction/10000002")
    took = time.monotonic() - started
    assert r.returncode == 3, r.stderr[-2000:]
    item = items["TradeInstruction/10000002"]
    assert item["status"] == "unknown" and "sent 2 times" in item["message"], item
    assert "not at SEI in read-backs over 2 s" in item["message"] and "rerun reads it back" in item["message"]
    assert 8 <= took < 8 + 8, took  # one window and a quarter, not two windows
    assert ticket_posts(sandbox) == 2 and sandbox.state.ticket_count(10000002) == 0
    r2, items2 = apply_reported(env, tmp_path / "r2.json", "--target", "TradeInstruction/10000002")
    assert r2.returncode == 0, r2.stderr[-2000:]
    quiet(sandbox)
    assert ticket_posts(sandbox) == 3 and sandbox.state.ticket_count(10000002) == 1
