"""Just-in-time bodies (apply/bodies.py): a batch's registrations read fresh; stale ones are not sent."""

from __future__ import annotations

import json

import httpx

from reconciler.apply.bodies import fresh_bodies
from reconciler.plan.builder import fingerprint_registration
from reconciler.sandbox.demo import make_registration

from ..helpers.vendors import orion
from ..plan.test_builder import manifests, reg_doc


def live(rid: int, targets=(20, 30, 50), **kw) -> dict:
    rows = [(36, targets[0], 100, 100), (34, targets[1], 0, 0), (30, targets[2], 0, 0)]
    return make_registration(rid, rows, first_account=rid * 10, **kw)


def serving(regs: dict[int, dict], asked: list):
    def handler(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)
        asked.append(ids)
        return httpx.Response(200, json=[regs[i] for i in ids if i in regs])

    return handler


def test_one_bulk_read_per_batch_and_bodies_from_the_fresh_object(tmp_path):
    declared = manifests(tmp_path, reg_doc(name="a", rid=1), reg_doc(name="b", rid=2))
    a, b = declared.registrations
    planned = {1: live(1, (25, 25, 50)), 2: live(2, (25, 25, 50))}
    # server-owned churn since the plan (a market value moved): not staleness; the body carries the new value
    fresh = {1: {**planned[1]}, 2: planned[2]}
    fresh[1]["accountSleeves"] = [{**s, "currentValue": 777} for s in planned[1]["accountSleeves"]]
    asked: list = []
    out = fresh_bodies(
        orion(serving(fresh, asked)),
        [(a, fingerprint_registration(planned[1]), None), (b, fingerprint_registration(planned[2]), None)],
    )
    assert asked == [[1, 2]]  # one bulk read for the batch, never one per registration
    assert [d.address for d, _ in out.ready] == ["SleeveRegistration/a", "SleeveRegistration/b"]
    body = out.ready[0][1]
    assert {s.get("currentValue") for s in body["accountSleeves"] if s["accountId"]} == {777}
    assert sorted(s["targetAllocation"] for s in body["accountSleeves"] if s.get("sleeveType") == "Normal sleeve") == [
        20,
        30,
        50,
    ]
    assert out.stale == [] and out.settled == []


def test_an_edit_since_the_plan_is_stale_named_with_its_editor_and_not_sent(tmp_path):
    declared = manifests(tmp_path, reg_doc(name="a", rid=1), reg_doc(name="b", rid=2), reg_doc(name="c", rid=3))
    a, b, c = declared.registrations
    planned = {1: live(1, (25, 25, 50)), 2: live(2, (25, 25, 50)), 3: live(3, (25, 25, 50))}
    edited = {**planned[2], "isDoNotTrade": True, "editedBy": "jdoe", "editedDate": "2026-12-06T09:00:00Z"}
    fresh = {1: planned[1], 2: edited}  # 3 was deleted in Orion
    out = fresh_bodies(
        orion(serving(fresh, [])), [(r, fingerprint_registration(planned[r.registration_id]), None) for r in (a, b, c)]
    )
    assert [d.address for d, _ in out.ready] == ["SleeveRegistration/a"]
    why = dict(out.stale)
    assert why["SleeveRegistration/b"].startswith(
        "stale: changed in Orion since the plan (edited by jdoe at 2026-12-06"
    )
    assert "not sent, so that edit is not overwritten" in why["SleeveRegistration/b"]
    assert why["SleeveRegistration/c"].startswith("stale: registration 3 is gone from Orion since the plan")
