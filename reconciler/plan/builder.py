"""Changes → Plan: pure, no I/O (sqlmesh's builder habit: the plan is data that render and apply share).

- Only changed registrations are sent, each as the live object with the declared fields laid over it;
  new sleeves carry accountId 0, removals go in deletedSleeveTargets.
- They go in the fewest balanced batches of at most the batch size (101 changes → 51 + 50).
- Only missing trade instructions are sent, one request each, with the model change's batchId and a
  batchSize counting all its instructions, including those already at SEI.
- Orion batches are wave 1; SEI requests are wave 2, started only after every Orion batch ended.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from typing import Any

from reconciler.config.ignore import IgnoreRule
from reconciler.errors import Diagnostic, LiveStateError
from reconciler.fields import (
    INSTRUCTION_FIELDS,
    ORION_BATCH_LIMIT,
    SERVER_OWNED_REGISTRATION_FIELDS,
    SERVER_OWNED_SLEEVE_FIELDS,
    sleeve_model_id,
)
from reconciler.manifests.rules import iter_registration_problems
from reconciler.model import (
    Action,
    Change,
    DesiredInstruction,
    DesiredRegistration,
    FieldChange,
    IgnoredChange,
    ManifestSet,
    Plan,
    Submission,
)
from reconciler.plan.diff import RegistrationDiff, diff_instruction, diff_registration
from reconciler.plan.targeting import Targeting, select
from reconciler.vendors.reads import LiveState, missing_registration

__all__ = [
    "ORION_SUBMIT_PATH",
    "SEI_SUBMIT_PATH",
    "PlanBuilder",
    "balanced_sizes",
    "build_payload",
    "build_plan",
    "fingerprint_registration",
    "fingerprint_ticket",
    "plan_summary",
]

ORION_SUBMIT_PATH = "/v1/Trading/Sleeve/Registrations/Action/process/batch"
SEI_SUBMIT_PATH = "/v1/order/tradetickets"
_BULK_ONLY_FIELDS = ("isValid", "validationMessage")  # added by ListWithAccountSleeves, never posted


def balanced_sizes(n: int, limit: int = ORION_BATCH_LIMIT) -> list[int]:
    """The fewest batches of at most `limit`, as even as possible: 101 → [51, 50], 250 → [84, 83, 83]."""
    if n <= 0:
        return []
    limit = max(1, min(limit, ORION_BATCH_LIMIT))
    k = -(-n // limit)
    base, extra = divmod(n, k)
    return [base + 1] * extra + [base] * (k - extra)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _strip_server_owned(reg: dict) -> dict:
    out = {k: v for k, v in reg.items() if k not in SERVER_OWNED_REGISTRATION_FIELDS}
    out["accountSleeves"] = sorted(
        ({k: v for k, v in s.items() if k not in SERVER_OWNED_SLEEVE_FIELDS} for s in reg.get("accountSleeves") or []),
        key=lambda s: s.get("accountId") or 0,
    )
    return out


def fingerprint_registration(live: dict) -> str:
    """A digest of everything a user can set on the live registration; server-owned churn is left out."""
    return hashlib.sha256(_canonical(_strip_server_owned(live)).encode()).hexdigest()[:32]


def fingerprint_ticket(rows: list[dict]) -> str:
    if not rows:
        return "absent"
    return hashlib.sha256(_canonical({k: rows[0].get(k) for k in INSTRUCTION_FIELDS}).encode()).hexdigest()[:32]


def _lay_over(live_value: Any, declared: Any) -> Any:
    """Declared values over live ones; nested objects merge key by key (declared keys only)."""
    if isinstance(declared, dict) and isinstance(live_value, dict):
        merged = dict(live_value)
        for k, v in declared.items():
            merged[k] = _lay_over(live_value.get(k), v)
        return merged
    return copy.deepcopy(declared)


def build_payload(desired: DesiredRegistration, live: dict, d: RegistrationDiff, *, owned: bool = False) -> dict:
    """The live object with the declared fields laid over it. `owned`: `live` was read for this body alone
    and may be used up (apply's fresh read, apply/bodies.py), which saves copying 100 registrations a batch."""
    payload = {k: v if owned else copy.deepcopy(v) for k, v in live.items() if k not in _BULK_ONLY_FIELDS}
    for f in d.changed_fields:
        payload[f] = _lay_over(live.get(f), desired.fields[f])
    sleeves = payload.get("accountSleeves") or []
    for s in sleeves:
        for f in d.changed_sleeves.get(s.get("accountId"), ()):
            declared = d.declared[s["accountId"]]
            s[f] = _lay_over(s.get(f), declared[f])
            if f == "modelAggId" and isinstance(s.get("model"), dict):
                s["model"] = {**s["model"], "id": declared[f]}
    for new in d.new_sleeves:
        sleeve = {"accountId": 0, **copy.deepcopy(new)}
        for f in ("targetAllocation", "contributionAllocation", "distributionAllocation"):
            sleeve.setdefault(f, 0)  # an undeclared allocation on a new sleeve is 0 (SPEC.md §1)
        sleeves.append(sleeve)
    payload["accountSleeves"] = sleeves
    # DeletedSleeveTargetDto [docs]: the sleeve's account and its model; no target model is declared
    payload["deletedSleeveTargets"] = [
        {"accountId": s["accountId"], "deletedModelId": sleeve_model_id(s), "targetModelId": None} for s in d.removed
    ] or None
    return payload


def build_plan(
    manifests: ManifestSet,
    live: LiveState,
    *,
    targeting: Targeting = Targeting(),
    batch_size: int = ORION_BATCH_LIMIT,
    ignore: tuple[IgnoreRule, ...] = (),
    today: dt.date | None = None,
) -> Plan:
    """The plan from everything in memory at once: apply's path, and the reference the streamed
    plan (stream.py) is tested against, resource for resource."""
    regs, instrs = select(manifests, targeting)
    builder = PlanBuilder(ignore=ignore, today=today)
    for desired in regs:
        current = live.registrations.get(desired.registration_id)
        if current is None:
            builder.problems.append(missing_registration(desired))
            continue
        builder.add_registration(desired, current)
    builder.check()
    batch_sizes = {b.batch_id: b.batch_size for b in manifests.batches}
    for instruction in instrs:
        builder.add_instruction(
            instruction, live.tickets.get(instruction.ticket_id, []), batch_sizes[instruction.batch_id]
        )
    return builder.plan(batch_size)


class PlanBuilder:
    """Changes accumulated one resource at a time, in any order; `plan()` puts them in plan order
    (registrations by address, then instructions by ticket id), so a streamed plan and one built
    from everything at once are the same plan. Unchanged registrations leave only a count."""

    def __init__(
        self, *, ignore: tuple[IgnoreRule, ...] = (), today: dt.date | None = None, payloads: bool = True
    ) -> None:
        """`payloads=False`: registrations keep what a reviewer and the journal need (declared changes,
        fingerprint, id), not the merged live object: apply builds each body fresh before its batch."""
        self.ignore, self.today, self.payloads = ignore, today, payloads
        self.unchanged = 0
        self.problems: list[Diagnostic] = []
        self._regs: list[tuple[str, Change | None, tuple[IgnoredChange, ...]]] = []
        self._instrs: list[tuple[int, Change, tuple[IgnoredChange, ...]]] = []

    def add_registration(self, desired: DesiredRegistration, current: dict) -> RegistrationDiff | None:
        """Diff one registration against live; its diff if it changes, else None."""
        d = diff_registration(desired, current, self.ignore, self.today)
        self.problems.extend(d.problems)
        if not d.changed:
            self.unchanged += 1
            if d.ignored:
                self._regs.append((desired.address, None, d.ignored))
            return None
        payload = build_payload(desired, current, d)
        deleted = {t["accountId"] for t in payload["deletedSleeveTargets"] or []}
        remaining = [s for s in payload["accountSleeves"] if s.get("accountId") not in deleted]
        for _, message, hint in iter_registration_problems(payload, remaining, complete=True):
            self.problems.append(
                desired.source.problem(f"{desired.address}: after merging with live state, {message}", hint)
            )
        self._regs.append(
            (
                desired.address,
                Change(
                    desired.address,
                    Action.UPDATE,
                    desired.source,
                    d.fields,
                    removed_sleeves=tuple(s["accountId"] for s in d.removed),
                    added_sleeves=len(d.new_sleeves),
                    payload=payload if self.payloads else None,
                    fingerprint=fingerprint_registration(current),
                    registration_id=desired.registration_id,
                ),
                d.ignored,
            )
        )
        return d

    def check(self) -> None:
        """Raise LiveStateError naming every registration that cannot be applied to live state."""
        if self.problems:
            raise LiveStateError("the manifests cannot be applied to live state as it stands:", self.problems)

    def add_instruction(self, desired: DesiredInstruction, rows: list[dict], batch_size: int) -> Change:
        d = diff_instruction(desired, rows, self.ignore, self.today)
        fp = fingerprint_ticket(rows)
        if not d.exists:
            body = {"data": {**desired.fields, "batchSize": batch_size}}
            # every field the ticket will carry, as a change from nothing: a submitted ticket can never
            # change, so a reviewer sees all of it (comments, CUSIP, masterOrderId…), not a headline
            sent = tuple(FieldChange(k, None, v) for k, v in body["data"].items())
            change = Change(desired.address, Action.CREATE, desired.source, sent, payload=body, fingerprint=fp)
        elif d.conflict:
            change = Change(desired.address, Action.CONFLICT, desired.source, d.fields, fingerprint=fp)
        else:
            self.unchanged += 1
            change = Change(desired.address, Action.NO_OP, desired.source, fingerprint=fp)
        self._instrs.append((desired.ticket_id, change, d.ignored))
        return change

    def plan(self, batch_size: int = ORION_BATCH_LIMIT) -> Plan:
        self._regs.sort(key=lambda t: t[0])
        self._instrs.sort(key=lambda t: t[0])
        changes = [c for _, c, _ in self._regs if c is not None] + [c for _, c, _ in self._instrs]
        ignored = tuple(i for _, _, ig in self._regs for i in ig) + tuple(i for _, _, ig in self._instrs for i in ig)
        return Plan(tuple(changes), tuple(_submissions(changes, batch_size)), self.unchanged, ignored)


def _submissions(changes: list[Change], batch_size: int) -> list[Submission]:
    updates = [c for c in changes if c.action is Action.UPDATE]
    out: list[Submission] = []
    start = 0
    for size in balanced_sizes(len(updates), batch_size):
        part = updates[start : start + size]
        start += size
        out.append(
            Submission(
                "orion",
                "POST",
                ORION_SUBMIT_PATH,
                tuple(c.address for c in part),
                wave=1,
                body=[c.payload for c in part] if all(c.payload is not None for c in part) else None,
                fingerprints=tuple(c.fingerprint for c in part),
            )
        )
    for c in changes:
        if c.action is Action.CREATE:
            out.append(Submission("sei", "POST", SEI_SUBMIT_PATH, (c.address,), wave=2, body=c.payload))
    return out


def plan_summary(plan: Plan) -> dict[str, Any]:
    """The counts of SPEC.md §4 plus business totals: registrations touched, gross notional by side."""
    counts = {a: sum(1 for c in plan.changes if c.action is a) for a in Action}
    buy = sell = 0.0
    for c in plan.changes:
        if c.action is Action.CREATE and c.payload:
            if str(c.ticket.get("side", "")).lower() == "buy":
                buy += c.notional
            else:
                sell += c.notional
    return {
        "create": counts[Action.CREATE],
        "update": counts[Action.UPDATE],
        "remove": sum(len(c.removed_sleeves) for c in plan.changes),
        "conflict": counts[Action.CONFLICT],
        "unchanged": plan.unchanged,
        "add_sleeve": sum(c.added_sleeves for c in plan.changes),
        "submissions": len(plan.submissions),
        "orion_batches": sum(1 for s in plan.submissions if s.api == "orion"),
        "sei_requests": sum(1 for s in plan.submissions if s.api == "sei"),
        "registrations_touched": counts[Action.UPDATE],
        "gross_buy_notional": round(buy, 2),
        "gross_sell_notional": round(sell, 2),
        "ignored": len(plan.ignored),
    }
