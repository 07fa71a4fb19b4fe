"""Outcome classification as tables: refusals at the HTTP boundary, batch items, ticket verdicts, the journal guard."""

from __future__ import annotations

import math

import httpx
import pytest

from reconciler.apply.outcomes import ItemStatus, batch_item_outcome, is_refusal, ticket_verdict
from reconciler.errors import AmbiguousWriteError, ApiError, TicketExistsError
from reconciler.model import DesiredInstruction, Source
from reconciler.plan.stages import Confirm, Gate, OrionWave, PendingBatch, Recover, SeiWave, build_stages
from reconciler.state.journal import TicketEvent
from reconciler.state.sqlite import SqliteJournal

from ..helpers.vendors import FAST, orion, sei


def _raise(exc):
    def handler(req):
        raise exc

    return handler


# (what the server or network did, is the write refused?)
WRITE_FAILURES = [
    ("connection refused", _raise(httpx.ConnectError("refused")), True),
    ("connect time-out", _raise(httpx.ConnectTimeout("slow")), True),
    ("read time-out after sending", _raise(httpx.ReadTimeout("late")), False),
    ("connection dropped mid-answer", _raise(httpx.RemoteProtocolError("closed")), False),
    ("500", lambda req: httpx.Response(500, json={"message": "boom"}), False),
    ("502", lambda req: httpx.Response(502, text="bad gateway"), False),
    ("408 request time-out", lambda req: httpx.Response(408, text="timeout"), False),
    ("503 without Retry-After", lambda req: httpx.Response(503, text="busy"), False),
    ("429 without Retry-After", lambda req: httpx.Response(429, text="slow down"), False),
    ("400 validation", lambda req: httpx.Response(400, json={"message": "bad cusip"}), True),
    ("403 forbidden", lambda req: httpx.Response(403, json={"message": "no"}), True),
    ("409 exists", lambda req: httpx.Response(409, json={"message": "exists"}), False),
    ("200 with HTML", lambda req: httpx.Response(200, text="<html>ok</html>"), False),
    ("200 with a JSON string", lambda req: httpx.Response(200, json="stored"), False),
    ("200 with data null", lambda req: httpx.Response(200, json={"data": None}), False),
]


@pytest.mark.parametrize("what,handler,refused", WRITE_FAILURES, ids=[w[0] for w in WRITE_FAILURES])
def test_a_ticket_write_is_refused_only_when_the_server_surely_did_not_act(what, handler, refused):
    client = sei(handler, policy=FAST)
    with pytest.raises(ApiError) as info:
        client.submit_ticket({"tradeTicketId": 1})
    assert is_refusal(info.value) is refused, what


@pytest.mark.parametrize("what,handler,refused", WRITE_FAILURES, ids=[w[0] for w in WRITE_FAILURES])
def test_a_batch_post_is_refused_only_when_the_server_surely_did_not_act(what, handler, refused):
    """The same table for Orion's batch POST: a refused batch is planned again; any other failure leaves
    it in doubt, to be looked for in the BatchProcessing list and never sent again blindly."""
    client = orion(handler, policy=FAST)
    with pytest.raises(ApiError) as info:
        client.submit_batch([{"registrationId": 1}])
    assert is_refusal(info.value) is refused, what


@pytest.mark.parametrize("body", ["<html>accepted</html>", "", "batch created", '{"id": "x"}'])
def test_an_unreadable_batch_id_in_a_200_is_in_doubt_never_a_refusal(body):
    client = orion(lambda req: httpx.Response(200, text=body))
    with pytest.raises(AmbiguousWriteError) as info:
        client.submit_batch([{"registrationId": 1}])
    assert not is_refusal(info.value) and "in doubt" in str(info.value)


def test_a_non_finite_number_never_leaves_the_process():
    sent = []
    client = sei(lambda req: sent.append(req) or httpx.Response(200, json={"data": {}}))
    with pytest.raises(ApiError) as info:
        client.submit_ticket({"tradeTicketId": 1, "orderGenerationPrice": math.nan})
    assert sent == [] and is_refusal(info.value) and "non-finite" in str(info.value)


def test_a_bug_is_never_a_refusal():
    assert not is_refusal(TypeError("x"))
    assert not is_refusal(TicketExistsError("exists", refused=True))
    assert is_refusal(ApiError("no", refused=True))


BATCH_ITEMS = [
    # matches_now, hint, status, → status
    (True, None, "Complete", ItemStatus.APPLIED),
    (True, "ignored when it matches", "PartiallyComplete", ItemStatus.APPLIED),
    (False, "model 36 is closed", "PartiallyComplete", ItemStatus.FAILED),
    (False, None, "Failed", ItemStatus.FAILED),
    (False, None, "Complete", ItemStatus.UNKNOWN),
    (None, None, "Complete", ItemStatus.UNKNOWN),
]


@pytest.mark.parametrize("matches,hint,status,expected", BATCH_ITEMS)
def test_batch_item_outcomes(matches, hint, status, expected):
    got, message = batch_item_outcome(batch_id=7, batch_status=status, matches_now=matches, error_hint=hint)
    assert got is expected and message


def test_unreadable_errors_make_a_non_matching_item_unknown_and_say_so():
    got, message = batch_item_outcome(
        batch_id=7,
        batch_status="Failed",
        matches_now=False,
        error_hint=None,
        errors_unreadable="the answer is a string",
    )
    assert got is ItemStatus.UNKNOWN and "errors could not be read" in message


def _instruction(**fields):
    base = {"batchId": "B", "tradeTicketId": 5, "side": "Buy", "ticker": "AAPL", "target": 10}
    return DesiredInstruction(5, {**base, **fields}, "B", "b", Source("f.yaml", 1))


@pytest.mark.parametrize(
    "rows,kind",
    [
        ([], "absent"),
        ([{"batchId": "B", "tradeTicketId": 5, "side": "BUY", "ticker": "AAPL", "target": 10, "quantity": 3}], "match"),
        ([{"batchId": "B", "tradeTicketId": 5, "side": "BUY", "ticker": "AAPL", "target": 11}], "differs"),
    ],
)
def test_ticket_verdicts(rows, kind):
    assert ticket_verdict(_instruction(), rows).kind == kind


def test_a_ticket_may_be_sent_only_when_the_journal_allows_it(tmp_path):
    j = SqliteJournal(tmp_path / "j.db")
    assert j.why_not_send(1) is None
    for event, allowed in [
        (TicketEvent.SENDING, False),
        (TicketEvent.IN_DOUBT, False),
        (TicketEvent.ABSENT_SETTLED, True),
        (TicketEvent.SENDING, False),
        (TicketEvent.REFUSED, True),
        (TicketEvent.SENDING, False),
        (TicketEvent.SENT, False),
        (TicketEvent.CONFIRMED, False),
    ]:
        j.ticket_event(1, 1, "TradeInstruction/1", event)
        assert (j.why_not_send(1) is None) is allowed, event
    assert oct((tmp_path / "j.db").stat().st_mode & 0o777) == "0o600"
    j.close()


def test_stages_are_data_and_gate_on_earlier_runs_batches():
    from reconciler.model import Plan, Submission

    orion_sub = Submission("orion", "POST", "/b", ("SleeveRegistration/a",), 1, body=[{}])
    sei_sub = Submission("sei", "POST", "/t", ("TradeInstruction/1",), 2, body={"data": {}})
    plan = Plan((), (orion_sub, sei_sub), 0)
    kinds = [type(s) for s in build_stages(plan)]
    assert kinds == [Recover, OrionWave, Gate, SeiWave, Confirm]
    pending = PendingBatch("x", ("SleeveRegistration/b",), (9,), 0.0, "batch 9 still processing")
    only_sei = build_stages(
        Plan((), (sei_sub,), 0), Recover(pending=(pending,), busy=(("SleeveRegistration/b", "..."),))
    )
    assert [type(s) for s in only_sei] == [Recover, OrionWave, Gate, SeiWave, Confirm]  # the gate holds for it
    assert only_sei[-1].busy == (("SleeveRegistration/b", "..."),)
    assert [type(s) for s in build_stages(Plan((), (sei_sub,), 0))] == [Recover, SeiWave, Confirm]
