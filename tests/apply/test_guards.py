"""Each guard against a second send, tested on its own: take the guard out and one of these fails.

- the journal's check before every ticket POST (`Journal.why_not_send`);
- the check before every batch POST that no open batch already holds one of its registrations;
- a read-back that fails is `unknown`, never "absent", so the ticket is not sent again;
- claims: a registration or ticket another workspace holds is never sent (claims.py).
The plans here are made as a stale run would make them (the journal not consulted), so nothing but the
guard stands between them and a duplicate. README.md ("Each guard, and the test that fails without it") lists
them with the guards tested elsewhere.
One more is not a guard but would cost memory if missed: the heap frozen for the waves is thawed after.
"""

from __future__ import annotations

import gc

import pytest

from reconciler.apply.evaluator import Evaluator
from reconciler.manifests import load_manifests
from reconciler.plan.builder import build_plan
from reconciler.plan.stages import build_stages
from reconciler.plan.targeting import Targeting
from reconciler.sandbox.faults import parse_faults
from reconciler.state.claims import SqliteClaims
from reconciler.state.journal import BatchState
from reconciler.state.sqlite import SqliteJournal
from reconciler.vendors import open_vendors
from reconciler.vendors.reads import read_live_state

from ..helpers.processes import ROOT
from ..helpers.sandbox import orion_batches, quiet
from ..helpers.state import claims_for
from ..helpers.vendors import settings_for

pytestmark = pytest.mark.integration


def apply_plan(sandbox, tmp_path, journal, targets=(), claims=None, faults="", **settings):
    """Plan from live state alone (a stale run's view), then (with `faults` set) run the evaluator on it."""
    config = settings_for(sandbox, **settings)
    manifests = load_manifests([str(ROOT / "manifests")])
    with open_vendors(config) as vendors:
        live = read_live_state(vendors, manifests.registrations, manifests.instructions, config)
        plan = build_plan(manifests, live, targeting=Targeting(targets=tuple(targets)))
        sandbox.faults.add(parse_faults(faults))
        evaluator = Evaluator(vendors, journal, config, manifests, claims=claims or claims_for(tmp_path))
        return evaluator.run(build_stages(plan), journal.begin_run("guard"))


@pytest.mark.parametrize(
    "events",
    [
        ["sending"],
        ["sending", "in-doubt"],
        ["sending", "exists"],
        ["sending", "sent"],
        ["sending", "in-doubt", "confirmed"],
        ["sending", "in-doubt", "conflict"],
    ],
)
def test_the_journal_stops_a_ticket_post_it_records_as_sent_or_in_doubt(sandbox, tmp_path, events):
    journal = SqliteJournal(tmp_path / "j.db")
    for event in events:
        journal.ticket_event(1, 10000002, "TradeInstruction/10000002", event)
    result = apply_plan(sandbox, tmp_path, journal, ["TradeInstruction/10000002"])
    journal.close()
    (item,) = result.items
    assert sandbox.state.ticket_posts == {}, "the journal said it was sent; it was POSTed again"
    assert item.status.value in ("skipped", "unknown") and item.message.startswith("not sent: the journal")


def test_an_open_batch_in_the_journal_stops_a_second_batch_holding_its_registration(sandbox, tmp_path):
    journal = SqliteJournal(tmp_path / "j.db")
    journal.batch_submitting(1, "earlier", ("SleeveRegistration/chen-ira",), [31549])
    journal.batch_state("earlier", BatchState.SUBMITTED, batch_id=424242)
    result = apply_plan(sandbox, tmp_path, journal, ["SleeveRegistration/*"])
    journal.close()
    assert orion_batches(sandbox) == [], "a registration was put in a second batch while one held it"
    assert {i.status.value for i in result.items} == {"skipped"}
    assert all("the journal holds an open batch for SleeveRegistration/chen-ira" in i.message for i in result.items)


def test_a_failed_read_back_is_unknown_and_the_ticket_is_never_sent_again(sandbox, tmp_path):
    """SEI stores the ticket and drops the answer; every read of the ticket list then fails (500).
    Counting a failed read as 'absent' would send it again once the settle window passed."""
    journal = SqliteJournal(tmp_path / "j.db")
    result = apply_plan(
        sandbox,
        tmp_path,
        journal,
        ["TradeInstruction/*"],
        read_timeout=1,
        settle_window=2,
        max_attempts=2,
        request_deadline=5,
        faults="drop@POST:/v1/order/tradetickets#1,500@GET:/v1/order/tradetickets",
    )
    quiet(sandbox)
    journal.close()
    assert sorted(sandbox.state.ticket_posts.values()) == [1, 1, 1], sandbox.state.ticket_posts
    unknown = [i for i in result.items if i.status.value == "unknown" and "reading the ticket back failed" in i.message]
    assert len(unknown) == 1, [(i.address, i.status, i.message) for i in result.items]


def test_a_claim_of_another_workspace_stops_the_batch_and_the_ticket(sandbox, tmp_path):
    """Another workspace on this machine holds registration 31549 and ticket 10000002 in flight (its
    lock held, as a running apply's is): neither is sent; every other item is."""
    import fcntl
    import os

    theirs = SqliteClaims(tmp_path / "claims.db", "their-tree @ hosts", str(tmp_path / "theirs"))
    (tmp_path / "theirs").mkdir()
    fd = os.open(str(tmp_path / "theirs" / "lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # their apply is running
    try:
        assert theirs.claim(sandbox.orion_url, "registration", "their-batch", ["31549"]) == {}
        assert theirs.claim(sandbox.sei_url, "ticket", "ticket:10000002", ["10000002"]) == {}
        journal = SqliteJournal(tmp_path / "j.db")
        result = apply_plan(sandbox, tmp_path, journal, claims=claims_for(tmp_path, "ours"))
        journal.close()
    finally:
        os.close(fd)
        theirs.close()
    by = {i.address: i for i in result.items}
    assert by["SleeveRegistration/chen-ira"].status.value == "skipped"
    assert (
        "registration 31549 is in flight from workspace their-tree @ hosts" in by["SleeveRegistration/chen-ira"].message
    )
    assert by["TradeInstruction/10000002"].status.value == "skipped"
    assert (
        "ticket 10000002 is sent or being sent by workspace their-tree @ hosts"
        in by["TradeInstruction/10000002"].message
    )
    assert by["SleeveRegistration/sd-regname1"].status.value == "applied"
    assert set(sandbox.state.ticket_posts) == {10000003, 10000102}
    sent = [{int(i["registrationId"]) for i in b.items} for b in sandbox.state.batches.values()]
    assert sent == [{31547, 31550}], sent  # the other changed registrations went, in one batch


def test_the_heap_is_frozen_out_of_collection_for_the_waves_and_thawed_after(sandbox, tmp_path, monkeypatch):
    """Full collections walked the plan's objects 20 times an Orion wave (0.15 s each, every thread stopped);
    a process that applies again (a test's, an embedding's) must get them back into collection."""
    seen: list[tuple[int, int]] = []
    submit = type(sandbox.state).submit_batch
    monkeypatch.setattr(
        type(sandbox.state),
        "submit_batch",
        lambda *a, **k: seen.append((gc.get_freeze_count(), gc.get_threshold()[2])) or submit(*a, **k),
    )
    before = gc.get_threshold()
    journal = SqliteJournal(tmp_path / "j.db")
    apply_plan(sandbox, tmp_path, journal, ["SleeveRegistration/*"])
    journal.close()
    assert seen and min(f for f, _ in seen) > 0, "the wave ran with the plan's objects in every full collection"
    assert min(t for _, t in seen) >= 100, "full collections came every 10 young ones during the wave"
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before, "the run left its heap frozen"
