"""A saved plan is a receipt: compared with the plan recomputed now, every difference is named."""

from __future__ import annotations

import datetime as dt

from reconciler.model import Action, Change, FieldChange, Plan, Source, Submission
from reconciler.plan.builder import fingerprint_registration
from reconciler.plan.receipt import endpoint_problems, receipt_problems, stale_reasons

LIVE = {
    "registrationId": 31547,
    "isDoNotTrade": False,
    "editedBy": "ops",
    "editedDate": "2026-12-01T10:00:00Z",
    "accountSleeves": [{"accountId": 1, "targetAllocation": 100, "currentValue": 5}],
}


def plan_of(target: int, fingerprint: str, after: int = 100) -> Plan:
    change = Change(
        "SleeveRegistration/a",
        Action.UPDATE,
        Source("a.yaml", 1),
        (FieldChange("accountSleeves[1].targetAllocation", 90, after),),
        fingerprint=fingerprint,
        registration_id=31547,
    )
    ticket = {"data": {"tradeTicketId": 7, "target": target}}
    create = Change("TradeInstruction/7", Action.CREATE, Source("t.yaml", 3), payload=ticket, fingerprint="absent")
    subs = (
        Submission("orion", "POST", "/batch", ("SleeveRegistration/a",), 1, None, (fingerprint,)),
        Submission("sei", "POST", "/tickets", ("TradeInstruction/7",), 2, ticket),
    )
    return Plan((change, create), subs, 0)


def test_a_plan_that_sends_what_it_showed_has_no_problems():
    fp = fingerprint_registration(LIVE)
    assert receipt_problems(plan_of(55, fp), plan_of(55, fp)) == []


def test_an_edited_request_body_or_declared_value_is_named():
    fp = fingerprint_registration(LIVE)
    (problem,) = receipt_problems(plan_of(5500, fp), plan_of(55, fp))
    assert problem.startswith("TradeInstruction/7: the saved plan's request body differs")
    (problem,) = receipt_problems(plan_of(55, fp, after=99), plan_of(55, fp))
    assert problem.startswith("SleeveRegistration/a: the saved plan's request body differs")


def test_server_owned_churn_is_not_staleness_but_an_edit_outside_git_is_named_with_its_editor():
    fp = fingerprint_registration(LIVE)
    later = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    churned = {**LIVE, "accountSleeves": [{**LIVE["accountSleeves"][0], "currentValue": 9}]}
    assert fingerprint_registration(churned) == fp  # currentValue is Orion's, not the user's
    assert (
        stale_reasons(
            plan_of(55, fp), plan_of(55, fp), expected_digest="d", digest="d", expired=False, expires_at=later
        )
        == []
    )
    edited = {**LIVE, "isDoNotTrade": True, "editedBy": "jdoe"}
    asked: list[list[int]] = []

    def read(ids: list[int]) -> dict[int, dict]:
        asked.append(ids)
        return {31547: edited}

    now = plan_of(55, fingerprint_registration(edited))
    reasons = stale_reasons(
        plan_of(55, fp), now, expected_digest="d", digest="e", expired=True, expires_at=later, read=read
    )
    assert reasons[0].startswith("the plan expired at 2026-12-06")
    assert reasons[1] == "the manifests changed since the plan was made"
    assert reasons[2].startswith("SleeveRegistration/a: live state changed since the plan (edited by jdoe")
    assert asked == [[31547]]  # only what changed is read again, to name its editor
    gone = Plan((), (), 0)  # now as declared (someone applied it by hand), or in doubt from an earlier run
    assert stale_reasons(plan_of(55, fp), gone, expected_digest="d", digest="d", expired=False, expires_at=later)
    in_doubt = stale_reasons(
        plan_of(55, fp),
        gone,
        expected_digest="d",
        digest="d",
        expired=False,
        expires_at=later,
        in_doubt=frozenset({"SleeveRegistration/a", "TradeInstruction/7"}),
    )
    assert in_doubt == [
        "SleeveRegistration/a: a write from an earlier run is still in doubt",
        "TradeInstruction/7: a write from an earlier run is still in doubt",
    ]


def test_a_plan_for_other_endpoints_is_named_by_api():
    saved = {"orion": "https://a/api", "sei": "https://s"}
    assert endpoint_problems(saved, {"orion": "https://b/api", "sei": "https://s"}) == [
        "the plan was made against orion https://a/api, not https://b/api"
    ]
