"""Evidence for writes in doubt, decided from what the vendors show (on httpx.MockTransport), with a clock
the test moves: a lost batch is found, or absent for a whole settle window; a ticket is read back."""

from __future__ import annotations

import types

import httpx
import pytest

from reconciler.apply.outcomes import VerdictKind
from reconciler.apply.recovery import Evidence, EvidenceKind, PollEnd
from reconciler.config import Settings
from reconciler.model import DesiredInstruction, Source
from reconciler.state.sqlite import SqliteJournal

from ..helpers.vendors import orion, sei

SENT_AT = 1_000_000.0


def evidence(tmp_path, orion_handler=None, sei_handler=None, now=SENT_AT, instructions=None):
    clock = [now]
    vendors = types.SimpleNamespace(
        orion=orion(orion_handler or (lambda r: httpx.Response(500))),
        sei=sei(sei_handler or (lambda r: httpx.Response(500))),
    )
    journal = SqliteJournal(tmp_path / "j.db")
    ev = Evidence(
        vendors,
        journal,
        Settings(settle_window=10, poll_timeout=60),
        instructions or {},
        progress=lambda kind, text: None,
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
        clock=lambda: clock[0],
    )
    return ev, journal, clock


def lost_batch(journal, submitted_epoch=SENT_AT):
    journal.batch_submitting(1, "lost", ("SleeveRegistration/a", "SleeveRegistration/b"), [1, 2])
    entry = journal.batch("lost")
    return entry.__class__(**{**entry.__dict__, "submitted_epoch": submitted_epoch})


def listed(*rows):
    return lambda request: httpx.Response(
        200,
        json=[{"id": i, "status": "Processing", "isDone": False, "totalItems": n, "createdBy": None} for i, n in rows],
    )


def test_a_lost_batch_of_the_right_size_is_found_in_the_batch_list(tmp_path):
    ev, journal, _ = evidence(tmp_path, listed((77, 5), (78, 2)))
    found = ev.batch_evidence(lost_batch(journal))
    assert found.kind is EvidenceKind.FOUND and found.batch_ids == (78,)  # the one with two items


def test_a_batch_absent_from_the_list_is_not_called_absent_before_the_settle_window_ends(tmp_path):
    ev, journal, clock = evidence(tmp_path, listed((77, 5)), now=SENT_AT + 3)
    entry = lost_batch(journal)
    assert ev.batch_evidence(entry).kind is EvidenceKind.NONE
    waited = ev.await_batch_evidence(entry)  # looking again until the window has passed
    assert waited.kind is EvidenceKind.NOT_LISTED and clock[0] >= SENT_AT + 10


def test_polling_a_batch_says_how_it_ended(tmp_path):
    answers = iter(
        [
            {"id": 9, "status": "Processing", "isDone": False},
            {"id": 9, "status": "Complete", "isDone": True, "errorCount": 0},
        ]
    )
    ev, _, _ = evidence(tmp_path, lambda r: httpx.Response(200, json=next(answers)))
    polled = ev.poll(9, SENT_AT + 60)
    assert polled.end is PollEnd.ENDED and polled.status.status == "Complete"
    ev, _, _ = evidence(tmp_path, lambda r: httpx.Response(404, json={"message": "no"}))
    assert ev.poll(9, SENT_AT + 60).end is PollEnd.GONE
    ev, _, _ = evidence(tmp_path, lambda r: httpx.Response(200, json={"id": 9, "status": "New", "isDone": False}))
    assert ev.poll(9, SENT_AT + 1).end is PollEnd.TIMEOUT


def _progressing(clock, seconds: float, polls: list[float], stuck: bool = False, ahead: float = 0.0):
    """A batch of 100 items that reports its progress as Orion does and ends after `seconds` (or stays at
    99 % for good). Orion's clock started `ahead` seconds before ours (SENT_AT): its answer took that long."""

    def answer(request):
        elapsed = clock[0] - SENT_AT + ahead
        polls.append(elapsed)
        done = not stuck and elapsed >= seconds
        completed = 99 if stuck else min(100, int(100 * elapsed / seconds))
        return httpx.Response(
            200,
            json={"id": 9, "status": "Complete" if done else "Processing", "isDone": done, "errorCount": 0}
            | {"totalItems": 100, "itemsCompleted": 100 if done else completed},
        )

    return answer


@pytest.mark.parametrize(("seconds", "ahead"), [(3.0, 0.2), (0.6, 0.04)])
def test_a_batch_is_polled_when_its_progress_says_it_ends_and_noticed_soon_after(tmp_path, seconds, ahead):
    """Backoff alone sees the 3 s batch 0.46 s late after 9 polls, the 0.6 s one 0.1 s late; at the rate their
    progress shows, 5 and 4 polls, 0.01 s and 0.05 s late (the estimate runs early by Orion's head start, and
    a batch that moves is polled again after 0.05 s, not after backoff's grown gap)."""
    polls: list[float] = []
    ev, _, clock = evidence(tmp_path)
    ev.vendors.orion = orion(_progressing(clock, seconds, polls, ahead=ahead))
    assert ev.poll(9, SENT_AT + 60).end is PollEnd.ENDED
    assert len(polls) <= 5 and polls[-1] - seconds <= 0.06, polls  # Orion's elapsed at each poll


def test_a_batch_stuck_at_99_percent_is_polled_no_more_often_than_backoff_and_at_least_every_second(tmp_path):
    polls: list[float] = []
    ev, _, clock = evidence(tmp_path)
    ev.vendors.orion = orion(_progressing(clock, 3.0, polls, stuck=True))
    assert ev.poll(9, SENT_AT + 60).end is PollEnd.TIMEOUT
    gaps = [b - a for a, b in zip(polls, polls[1:])]
    assert max(gaps) <= 1.0 + 1e-9 and 55 <= len(polls) <= 70, (len(polls), max(gaps))


def _ticket_10000002():
    return DesiredInstruction(
        10000002,
        {"tradeTicketId": 10000002, "side": "Buy", "ticker": "AAPL", "target": 5},
        "B1",
        "b",
        Source("t.yaml", 3),
    )


def test_a_ticket_read_back_is_a_match_absent_only_past_the_window_and_unknown_when_unreadable(tmp_path):
    row = {"tradeTicketId": 10000002, "side": "BUY", "ticker": "AAPL", "target": 5, "orderId": None}
    desired = {"TradeInstruction/10000002": _ticket_10000002()}
    ev, _, _ = evidence(
        tmp_path, sei_handler=lambda r: httpx.Response(200, json={"data": [row], "paging": {}}), instructions=desired
    )
    assert ev.settle_ticket(10000002, SENT_AT).kind is VerdictKind.MATCH
    ev, _, clock = evidence(
        tmp_path, sei_handler=lambda r: httpx.Response(200, json={"data": [], "paging": {}}), instructions=desired
    )
    verdict = ev.settle_ticket(10000002, SENT_AT)
    assert verdict.kind is VerdictKind.ABSENT and clock[0] >= SENT_AT + 10  # every read-back, the last past it
    ev, _, _ = evidence(tmp_path, sei_handler=lambda r: httpx.Response(500), instructions=desired)
    assert ev.settle_ticket(10000002, SENT_AT) is None  # unknown: never "absent", never a re-send
