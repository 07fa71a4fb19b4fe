"""Claims across workspaces: live while their holder's write may be in flight, stale otherwise, and a
stored ticket's for good."""

from __future__ import annotations

from reconciler.state.claims import SqliteClaims
from reconciler.state.journal import BatchState, TicketEvent
from reconciler.state.sqlite import SqliteJournal

from ..helpers.state import claims_for


def test_a_stale_claim_is_taken_over_and_a_stored_ticket_never_is(sandbox, tmp_path):
    """A claim whose holder is gone (no lock, its journal entry closed) is taken over; a ticket SEI
    stored for another workspace stays claimed for good: a stale plan in this one never sends it."""
    theirs = SqliteClaims(tmp_path / "claims.db", "their-tree", str(tmp_path / "theirs"))
    their_journal = SqliteJournal(tmp_path / "theirs" / "journal.db")
    assert theirs.claim(sandbox.orion_url, "registration", "gone-batch", ["31549"]) == {}
    their_journal.batch_submitting(1, "gone-batch", ("SleeveRegistration/chen-ira",), [31549])
    their_journal.batch_state("gone-batch", BatchState.ENDED, batch_id=1)
    assert theirs.claim(sandbox.sei_url, "ticket", "ticket:10000002", ["10000002"]) == {}
    their_journal.ticket_event(1, 10000002, "TradeInstruction/10000002", TicketEvent.SENDING)
    their_journal.ticket_event(1, 10000002, "TradeInstruction/10000002", TicketEvent.SENT)
    theirs.settle(their_journal)
    their_journal.close()
    theirs.close()
    ours = claims_for(tmp_path, "ours")
    assert ours.claim(sandbox.orion_url, "registration", "our-batch", ["31549"]) == {}  # taken over
    (held,) = ours.claim(sandbox.sei_url, "ticket", "ticket:10000002", ["10000002"]).values()
    assert "was already sent to SEI by workspace their-tree" in held.why("ticket", "10000002")
    ours.close()


def test_a_ticket_stored_by_a_run_killed_before_it_settled_its_claims_is_never_taken_over(sandbox, tmp_path):
    """Their run journaled the ticket `sent` (SEI stored it) and was killed before the end of its run made
    the claim `stored:`: no lock, no open entry. The claim still stands (their journal says stored), so a
    plan of ours made before their send never POSTs it; their rerun's settle makes it permanent."""
    theirs = SqliteClaims(tmp_path / "claims.db", "their-tree", str(tmp_path / "theirs"))
    their_journal = SqliteJournal(tmp_path / "theirs" / "journal.db")
    assert theirs.claim_each(sandbox.sei_url, "ticket", [("ticket:10000002", "10000002")]) == {}
    their_journal.ticket_event(1, 10000002, "TradeInstruction/10000002", TicketEvent.SENDING)
    their_journal.ticket_event(1, 10000002, "TradeInstruction/10000002", TicketEvent.SENT)
    their_journal.close()  # killed here: no settle
    theirs.close()
    ours = claims_for(tmp_path, "ours")
    (held,) = ours.claim(sandbox.sei_url, "ticket", "ticket:10000002", ["10000002"]).values()
    assert "ticket 10000002 is sent or being sent by workspace their-tree" in held.why("ticket", "10000002")
    ours.close()


def test_in_postgresql_too_a_stored_ticket_of_a_killed_run_is_never_taken_over(sandbox, pg_fresh):
    """The same, in the shared backend: their journal rows say `sent`, they hold no lease."""
    from reconciler.secret import Secret
    from reconciler.state.postgres import PostgresClaims, PostgresJournal

    url = Secret(pg_fresh)
    theirs, their_journal = PostgresClaims(url, "their-ws", "their-tree"), PostgresJournal(url, "their-ws")
    assert theirs.claim_each(sandbox.sei_url, "ticket", [("ticket:10000002", "10000002")]) == {}
    their_journal.ticket_event(1, 10000002, "TradeInstruction/10000002", TicketEvent.SENDING)
    their_journal.ticket_event(1, 10000002, "TradeInstruction/10000002", TicketEvent.SENT)
    their_journal.close()
    theirs.close()
    ours = PostgresClaims(url, "our-ws", "our-tree")
    (held,) = ours.claim(sandbox.sei_url, "ticket", "ticket:10000002", ["10000002"]).values()
    assert "ticket 10000002 is sent or being sent by workspace their-tree" in held.why("ticket", "10000002")
    ours.close()
