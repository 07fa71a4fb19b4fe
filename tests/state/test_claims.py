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
