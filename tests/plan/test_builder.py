"""The differ and the planner, without HTTP: every diff rule, every action, batching, targeting, ignores."""

from __future__ import annotations

import copy
import datetime as dt
import textwrap
import time
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.ignore import IgnoreRule
from reconciler.errors import LiveStateError
from reconciler.manifests import load_manifests
from reconciler.model import Action
from reconciler.plan.builder import balanced_sizes, build_plan, fingerprint_registration
from reconciler.plan.diff import deepdiff_calls, diff_registration
from reconciler.plan.targeting import Targeting
from reconciler.sandbox.demo import make_registration, make_ticket_rows
from reconciler.vendors.reads import LiveState

REG = """\
apiVersion: reconciler/v1
kind: SleeveRegistration
metadata: {{name: {name}, labels: {{office: {office}}}}}
spec:
  registrationId: {rid}
{body}"""

SLEEVES = """\
  accountSleeves:
    - {sleeveType: Normal sleeve, modelAggId: 36, targetAllocation: 20}
    - {sleeveType: Normal sleeve, modelAggId: 34, targetAllocation: 30}
    - {sleeveType: Normal sleeve, modelAggId: 30, targetAllocation: 50}
"""


def live_reg(rid=31547, rows=((36, 20, 100, 100), (34, 30, 0, 0), (30, 50, 0, 0)), **kw):
    return make_registration(rid, list(rows), first_account=rid * 10, **kw)


def manifests(tmp_path, *docs: str):
    for i, d in enumerate(docs):
        (tmp_path / f"m{i}.yaml").write_text(textwrap.dedent(d))
    return load_manifests([str(tmp_path)])


def reg_doc(body: str = SLEEVES, name="r1", rid=31547, office="west") -> str:
    return REG.format(name=name, rid=rid, office=office, body=body)


def only_change(plan):
    (change,) = plan.actionable()
    return change


# --- diff traps: none of these is a change -------------------------------------------------------


def test_numbers_equal_in_value_enum_spellings_and_order_are_not_changes(tmp_path):
    body = """\
  accountSleeves:
    - {sleeveType: Normal sleeve, modelAggId: 30, targetAllocation: 50.0, targetBalanceType: Percent}
    - {sleeveType: Normal sleeve, modelAggId: 36, targetAllocation: 20, targetBalanceType: 1}
    - {sleeveType: Normal sleeve, modelAggId: 34, targetAllocation: 30.000}
"""
    m = manifests(tmp_path, reg_doc(body))
    before = deepdiff_calls()
    plan = build_plan(m, LiveState({31547: live_reg()}))
    assert not plan.has_changes and plan.unchanged == 1
    assert deepdiff_calls() == before  # the cheap comparison settled it


def test_server_owned_and_undeclared_fields_never_count(tmp_path):
    m = manifests(tmp_path, reg_doc(SLEEVES + "  isActive: true\n"))
    live = live_reg()
    live.update(
        editedBy="someone",
        editedDate="2026-11-20T00:00:00",
        clientId=1,
        targetTotal=55,
        needsUpdate=True,
        autoRebalFrequency="Monthly",
        tolerancePercent=7,
    )  # undeclared: keeps live values
    for s in live["accountSleeves"]:
        s.update(currentValue=123.45, currentAllocation=99, modelAgg="renamed", toleranceUpper=9)
    assert not build_plan(m, LiveState({31547: live})).has_changes


def test_custodial_contribution_distribution_left_out_are_left_alone(tmp_path):
    m = manifests(tmp_path, reg_doc())
    plan = build_plan(m, LiveState({31547: live_reg()}))
    assert not plan.has_changes  # live has 3 special sleeves the manifest does not mention


def test_nested_objects_compare_only_declared_keys(tmp_path):
    m = manifests(tmp_path, reg_doc(SLEEVES + "  custodialBilling: {billFeeScheduleId: 4}\n"))
    assert not build_plan(m, LiveState({31547: live_reg()})).has_changes
    m2 = manifests(tmp_path, reg_doc(SLEEVES + "  custodialBilling: {billFeeScheduleId: 5}\n"))
    change = only_change(build_plan(m2, LiveState({31547: live_reg()})))
    assert [(f.path, f.before, f.after) for f in change.fields] == [("custodialBilling.billFeeScheduleId", 4, 5)]
    billing = change.payload["custodialBilling"]
    assert (
        billing["billFeeScheduleId"] == 5 and billing["billMasterPayoutScheduleName"] == "Blankdb"
    )  # merged, not replaced


# --- actions -------------------------------------------------------------------------------------


def test_update_payload_is_live_with_declared_fields_laid_over(tmp_path):
    body = SLEEVES.replace("targetAllocation: 20}", "targetAllocation: 25}").replace(
        "modelAggId: 34, targetAllocation: 30", "modelAggId: 34, targetAllocation: 25"
    )
    m = manifests(tmp_path, reg_doc(body + "  isDoNotTrade: true\n"))
    live = live_reg()
    change = only_change(build_plan(m, LiveState({31547: live})))
    assert change.action is Action.UPDATE
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("isDoNotTrade", False, True),
        ("accountSleeves[Normal sleeve, model 34].targetAllocation", 30, 25),
        ("accountSleeves[Normal sleeve, model 36].targetAllocation", 20, 25),
    ]
    p = change.payload
    assert p["isDoNotTrade"] is True and p["clientId"] == live["clientId"] and p["deletedSleeveTargets"] is None
    by_model = {s["modelAggId"]: s for s in p["accountSleeves"] if s.get("modelAggId")}
    assert by_model[36]["targetAllocation"] == 25 and by_model[36]["contributionAllocation"] == 100  # live kept
    assert len(p["accountSleeves"]) == 6 and "isValid" not in p
    assert change.fingerprint == fingerprint_registration(live)


def test_new_sleeve_has_account_id_zero_and_removed_goes_to_deleted_targets(tmp_path):
    body = """\
  accountSleeves:
    - {sleeveType: Normal sleeve, modelAggId: 36, targetAllocation: 20}
    - {sleeveType: Normal sleeve, modelAggId: 34, targetAllocation: 30}
    - {sleeveType: Unmanaged sleeve, targetAllocation: 50}
"""
    m = manifests(tmp_path, reg_doc(body))
    live = live_reg()
    change = only_change(build_plan(m, LiveState({31547: live})))
    gone = next(s for s in live["accountSleeves"] if s.get("modelAggId") == 30)
    assert change.removed_sleeves == (gone["accountId"],) and change.added_sleeves == 1
    new = [s for s in change.payload["accountSleeves"] if s["accountId"] == 0]
    assert new == [
        {
            "accountId": 0,
            "sleeveType": "Unmanaged sleeve",
            "targetAllocation": 50,
            "contributionAllocation": 0,
            "distributionAllocation": 0,
        }
    ]
    # DeletedSleeveTargetDto objects, the model filled from the live sleeve (API.md, revised)
    assert change.payload["deletedSleeveTargets"] == [
        {"accountId": gone["accountId"], "deletedModelId": 30, "targetModelId": None}
    ]
    paths = [f.path for f in change.fields]
    assert "accountSleeves[Unmanaged sleeve]" in paths
    assert f"accountSleeves[Normal sleeve, model 30 (accountId {gone['accountId']})]" in paths


def test_undeclared_unmanaged_sleeve_is_removed(tmp_path):
    m = manifests(
        tmp_path,
        reg_doc(
            SLEEVES.replace("targetAllocation: 50", "targetAllocation: 40")
            + "    - {sleeveType: Unmanaged sleeve, targetAllocation: 10}\n"
        ),
    )
    live = live_reg(rows=((36, 20, 100, 100), (34, 30, 0, 0), (30, 40, 0, 0)), unmanaged=10)
    assert not build_plan(m, LiveState({31547: live})).has_changes
    m2 = manifests(tmp_path, reg_doc(SLEEVES))
    change = only_change(
        build_plan(
            m2, LiveState({31547: live_reg(rows=((36, 20, 100, 100), (34, 30, 0, 0), (30, 50, 0, 0)), unmanaged=0)})
        )
    )
    assert len(change.removed_sleeves) == 1


def test_sleeves_matched_by_account_id_when_declared(tmp_path):
    live = live_reg()
    aid = next(s["accountId"] for s in live["accountSleeves"] if s.get("modelAggId") == 34)
    body = SLEEVES.replace(
        "{sleeveType: Normal sleeve, modelAggId: 34, targetAllocation: 30}",
        f"{{accountId: {aid}, sleeveType: Normal sleeve, modelAggId: 41, targetAllocation: 30}}",
    )
    change = only_change(build_plan(manifests(tmp_path, reg_doc(body)), LiveState({31547: live})))
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        (f"accountSleeves[accountId {aid}].modelAggId", 34, 41)
    ]
    sleeve = next(s for s in change.payload["accountSleeves"] if s["accountId"] == aid)
    assert sleeve["modelAggId"] == 41 and not change.removed_sleeves


def test_declared_account_id_that_is_not_live_is_an_error_with_source(tmp_path):
    body = SLEEVES.replace(
        "{sleeveType: Normal sleeve, modelAggId: 34", "{accountId: 999, sleeveType: Normal sleeve, modelAggId: 34"
    )
    with pytest.raises(LiveStateError, match=r"m0.yaml:8:\d+: accountId 999 is not a sleeve of registration 31547"):
        build_plan(manifests(tmp_path, reg_doc(body)), LiveState({31547: live_reg()}))


def test_missing_registration_names_file_and_line(tmp_path):
    with pytest.raises(
        LiveStateError, match=r"m0.yaml:1:1: SleeveRegistration/r1 \(registrationId 31547\) does not exist"
    ):
        build_plan(manifests(tmp_path, reg_doc()), LiveState({}))


def test_merged_result_is_checked_against_the_sleeve_rules(tmp_path):
    """Targets only the manifest declares can still break the sum once live sleeves are merged in."""
    body = (
        "  accountSleeves:\n    - {sleeveType: Normal sleeve, modelAggId: 36, targetAllocation: 20}\n"
        "    - {sleeveType: Normal sleeve, modelAggId: 34, targetAllocation: 30}\n"
        "    - {sleeveType: Normal sleeve, modelAggId: 30}\n"
    )
    live = live_reg(rows=((36, 20, 100, 100), (34, 40, 0, 0), (30, 40, 0, 0)))
    with pytest.raises(
        LiveStateError,
        match=r"m0.yaml:1:\d+: SleeveRegistration/r1: after merging with live state, targetAllocation sums .* to 90",
    ):
        build_plan(manifests(tmp_path, reg_doc(body)), LiveState({31547: live}))


BATCH = """\
apiVersion: reconciler/v1
kind: TradeBatch
metadata: {name: b1, labels: {desk: equity}}
spec:
  batchId: "B-1"
  strategyCode: LCG
  affectsModel: true
  instructions:
    - {tradeTicketId: 1, masterOrderId: 9, side: Buy, ticker: AAPL, cusip: "037833100", securityName: Apple Inc.,
       target: 10, orderGenerationPrice: 100}
    - {tradeTicketId: 2, masterOrderId: 9, side: Sell, ticker: MSFT, cusip: "594918104", securityName: Microsoft Corp.,
       target: 5, orderGenerationPrice: 400}
    - {tradeTicketId: 3, masterOrderId: 9, side: Buy, ticker: NVDA, cusip: "67066G104", securityName: NVIDIA Corp.,
       target: 7, orderGenerationPrice: 140}
"""


def _sent(m, tid, **over):
    ins = next(i for i in m.instructions if i.ticket_id == tid)
    return make_ticket_rows({**ins.fields, **over}, 3, orders=2)


def test_instruction_create_noop_conflict_and_batch_size_counts_sent_ones(tmp_path):
    m = manifests(tmp_path, BATCH)
    live = LiveState(tickets={1: _sent(m, 1), 2: _sent(m, 2, target=6)})  # 1 matches (side BUY), 2 differs
    plan = build_plan(m, live)
    actions = {c.address: c.action for c in plan.changes}
    assert actions == {
        "TradeInstruction/1": Action.NO_OP,
        "TradeInstruction/2": Action.CONFLICT,
        "TradeInstruction/3": Action.CREATE,
    }
    conflict = next(c for c in plan.changes if c.action is Action.CONFLICT)
    assert [(f.path, f.before, f.after) for f in conflict.fields] == [("target", 6, 5)]
    (sub,) = plan.submissions
    assert sub.api == "sei" and sub.wave == 2 and sub.items == ("TradeInstruction/3",)
    assert sub.body == {
        "data": {
            "batchId": "B-1",
            "strategyCode": "LCG",
            "affectsModel": True,
            "tradeTicketId": 3,
            "masterOrderId": 9,
            "side": "Buy",
            "ticker": "NVDA",
            "cusip": "67066G104",
            "securityName": "NVIDIA Corp.",
            "target": 7,
            "orderGenerationPrice": 140,
            "batchSize": 3,
        }
    }
    assert plan.conflicts and plan.has_changes and plan.unchanged == 1


def test_quantity_per_order_is_never_compared_with_target(tmp_path):
    m = manifests(tmp_path, BATCH)
    rows = _sent(m, 1)
    for r in rows:
        r["quantity"] = 3  # filled in two orders of 3 each, target 10
    plan = build_plan(m, LiveState(tickets={1: rows}), targeting=Targeting(("TradeInstruction/1",)))
    assert [c.action for c in plan.changes] == [Action.NO_OP]


# --- batching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,sizes",
    [(0, []), (1, [1]), (100, [100]), (101, [51, 50]), (250, [84, 83, 83]), (1000, [100] * 10), (1001, [91] * 11)],
)
def test_balanced_sizes(n, sizes):
    assert balanced_sizes(n) == sizes
    assert sum(sizes) == n and all(s <= 100 for s in sizes)


def test_batch_size_never_exceeds_100_even_if_asked():
    assert balanced_sizes(300, limit=500) == [100, 100, 100]
    assert balanced_sizes(101, limit=50) == [34, 34, 33]


@pytest.mark.parametrize("changed", [1, 100, 101, 250])
def test_plan_submits_changed_registrations_in_balanced_batches(tmp_path, changed):
    docs = "---\n".join(reg_doc(name=f"r{i}", rid=100 + i) for i in range(changed + 5))
    m = manifests(tmp_path, docs)
    live = {
        100 + i: live_reg(
            100 + i,
            rows=((36, 25, 100, 100), (34, 25, 0, 0), (30, 50, 0, 0))
            if i < changed
            else ((36, 20, 100, 100), (34, 30, 0, 0), (30, 50, 0, 0)),
        )
        for i in range(changed + 5)
    }
    plan = build_plan(m, LiveState(live))
    orion = [s for s in plan.submissions if s.api == "orion"]
    assert [len(s.items) for s in orion] == balanced_sizes(changed)
    assert all(s.wave == 1 for s in orion) and plan.unchanged == 5
    assert sorted(a for s in orion for a in s.items) == sorted(c.address for c in plan.actionable())


# --- targeting and ignore rules -----------------------------------------------------------------


def _two_changed(tmp_path):
    docs = (
        reg_doc(name="west-a", rid=1, office="west")
        + "---\n"
        + reg_doc(name="east-b", rid=2, office="east")
        + "---\n"
        + BATCH
    )
    live = {i: live_reg(i, rows=((36, 25, 100, 100), (34, 25, 0, 0), (30, 50, 0, 0))) for i in (1, 2)}
    return manifests(tmp_path, docs), LiveState(live)


@pytest.mark.parametrize(
    "targeting,expected",
    [
        (Targeting(targets=("SleeveRegistration/west-*",)), ["SleeveRegistration/west-a"]),
        (
            Targeting(excludes=("SleeveRegistration/*",)),
            ["TradeInstruction/1", "TradeInstruction/2", "TradeInstruction/3"],
        ),
        (Targeting(selectors=(("office", "east"),)), ["SleeveRegistration/east-b"]),
        (Targeting(targets=("TradeInstruction/2",)), ["TradeInstruction/2"]),
        (
            Targeting(selectors=(("desk", "equity"),), excludes=("TradeInstruction/1",)),
            ["TradeInstruction/2", "TradeInstruction/3"],
        ),
    ],
)
def test_targeting(tmp_path, targeting, expected):
    m, live = _two_changed(tmp_path)
    assert sorted(c.address for c in build_plan(m, live, targeting=targeting).actionable()) == expected


def test_ignore_rules_hide_matching_fields_and_are_listed(tmp_path):
    m, live = _two_changed(tmp_path)
    rules = (IgnoreRule("SleeveRegistration/west-*", "accountSleeves[*].targetAllocation", "rebalance pending", None),)
    plan = build_plan(m, live, ignore=rules, targeting=Targeting(excludes=("TradeInstruction/*",)))
    assert [c.address for c in plan.actionable()] == ["SleeveRegistration/east-b"]
    assert {(i.address, i.reason) for i in plan.ignored} == {("SleeveRegistration/west-a", "rebalance pending")}
    expired = (IgnoreRule("*", "*", "old", dt.date(2020, 1, 1)),)
    assert (
        len(build_plan(m, live, ignore=expired, targeting=Targeting(excludes=("TradeInstruction/*",))).actionable())
        == 2
    )


def test_ignored_field_keeps_its_live_value_in_the_payload(tmp_path):
    body = SLEEVES.replace("targetAllocation: 20}", "targetAllocation: 25}").replace(
        "modelAggId: 34, targetAllocation: 30", "modelAggId: 34, targetAllocation: 25"
    )
    m = manifests(tmp_path, reg_doc(body + "  isDoNotTrade: true\n"))
    rules = (IgnoreRule("*", "isDoNotTrade", "set by compliance in Orion", None),)
    change = only_change(build_plan(m, LiveState({31547: live_reg()}), ignore=rules))
    assert change.payload["isDoNotTrade"] is False and "isDoNotTrade" not in [f.path for f in change.fields]


# --- scale: deepdiff only where the cheap comparison differs -----------------------------------


def test_deepdiff_runs_only_on_drifted_registrations_at_10000(tmp_path):
    n, drifted = 10_000, 100
    (tmp_path / "t.yaml").write_text(textwrap.dedent(REG.format(name="x", rid=1, office="w", body=SLEEVES)))
    one = load_manifests([str(tmp_path / "t.yaml")]).registrations[0]
    from dataclasses import replace

    from reconciler.model import ManifestSet

    regs = tuple(replace(one, name=f"r{i}", registration_id=10_000 + i) for i in range(n))
    live = {
        10_000 + i: live_reg(
            10_000 + i,
            rows=((36, 25, 100, 100), (34, 25, 0, 0), (30, 50, 0, 0))
            if i % 100 == 0
            else ((36, 20, 100, 100), (34, 30, 0, 0), (30, 50, 0, 0)),
        )
        for i in range(n)
    }
    before = deepdiff_calls()
    start = time.perf_counter()
    plan = build_plan(ManifestSet(regs, (), "0" * 64), LiveState(live))
    elapsed = time.perf_counter() - start
    assert deepdiff_calls() - before == drifted
    assert len(plan.actionable()) == drifted and plan.unchanged == n - drifted
    print(f"\nplanned {n} registrations with 1% drift in {elapsed:.2f} s, {drifted} deepdiff calls")


def test_diff_registration_is_symmetric_about_declared_fields_only(tmp_path):
    """A live field the manifest never names changing does not touch the diff at all."""
    m = manifests(tmp_path, reg_doc())
    live = live_reg()
    other = copy.deepcopy(live)
    other["mandate"] = True
    assert not diff_registration(m.registrations[0], live).changed
    assert not diff_registration(m.registrations[0], other).changed


# --- deepdiff sees only what differs, and reports what it reported on the whole ------------------

_ODD = st.one_of(st.integers(-1, 101), st.floats(0, 100, allow_nan=False), st.booleans(), st.just("30"), st.none())


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_diffing_only_what_differs_reports_what_diffing_everything_reports(data):
    """Equal fields and sleeves are left out of deepdiff; its report must not change, whatever drifted
    (types included: True for 1 and 20.0 for 20 are still reported where deepdiff reported them)."""
    import reconciler.plan.diff as diff_mod

    body = "  isActive: true\n  contributionAllocationMethod: Assigned\n" + SLEEVES
    desired = _resolved_registration(reg_doc(body))
    live = live_reg()
    for sleeve in live["accountSleeves"]:
        for f in ("targetAllocation", "modelAggId"):
            if data.draw(st.booleans()):
                sleeve[f] = data.draw(_ODD)
    if data.draw(st.booleans()):
        live["isActive"] = data.draw(st.sampled_from([1, False, "true", None]))
    if data.draw(st.booleans()):
        live["contributionAllocationMethod"] = data.draw(st.sampled_from(["Percent", 1, "ASSIGNED"]))
    if data.draw(st.booleans()):
        live["accountSleeves"].pop(data.draw(st.integers(0, len(live["accountSleeves"]) - 1)))
    with mock.patch.object(diff_mod, "_drop_identical", lambda want, have: None):
        whole = diff_registration(desired, copy.deepcopy(live))
    assert diff_registration(desired, live) == whole


def _resolved_registration(doc: str):
    from reconciler.manifests.resolve import resolve_document
    from reconciler.yamldoc import load_documents

    (document,), diags = load_documents(doc.encode(), "r1.yaml")
    assert not diags
    return resolve_document("SleeveRegistration", document).registration
