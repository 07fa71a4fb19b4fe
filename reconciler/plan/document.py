"""Plan ⇄ JSON document: the `--format json` contract (schemas/plan.schema.json) and saved plans.

One serializer for both, so what `plan --format json` promises and what `apply FILE` reads cannot
drift apart. The document holds no secrets: payloads are vendor objects and manifest values only.
"""

from __future__ import annotations

from typing import Any

from reconciler.manifests.policy import PolicyResult
from reconciler.model import Action, Change, FieldChange, IgnoredChange, Plan, Source, Submission
from reconciler.plan.builder import plan_summary
from reconciler.version import __version__

__all__ = ["FORMAT_VERSION", "plan_from_document", "plan_to_document"]

FORMAT_VERSION = "1"


def plan_to_document(plan: Plan, *, include_payloads: bool = False) -> dict[str, Any]:
    """The JSON shape of a plan. `include_payloads` (a saved plan): fingerprints, registration ids and
    ticket bodies too; never whole registrations, which apply reads fresh before each batch."""
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "summary": plan_summary(plan),
        "changes": [_change(c, include_payloads) for c in plan.changes],
        "submissions": [_submission(s, include_payloads) for s in plan.submissions],
        "ignored": [{"address": i.address, "path": i.path, "reason": i.reason} for i in plan.ignored],
        "policy": {
            "results": [r.as_dict() for r in plan.policy_results],
            **({"windows_as_of": plan.windows_as_of} if plan.windows_as_of else {}),
        },
    }
    if plan.scope is not None:
        doc["partial"] = plan.scope
    return doc


def _change(c: Change, include_payloads: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": c.address,
        "action": c.action.value,
        "source": {"file": c.source.file, "line": c.source.line},
        "fields": [{"path": f.path, "before": f.before, "after": f.after} for f in c.fields],
    }
    if c.removed_sleeves:
        out["removed_sleeves"] = list(c.removed_sleeves)
    if c.added_sleeves:
        out["added_sleeves"] = c.added_sleeves
    if include_payloads:  # a saved plan: what the receipt check and apply need, no registration bodies
        out["fingerprint"] = c.fingerprint
        if c.registration_id is not None:
            out["registration_id"] = c.registration_id
        if c.payload is not None and c.action is Action.CREATE:
            out["payload"] = c.payload
    return out


def _submission(s: Submission, include_payloads: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"api": s.api, "method": s.method, "path": s.path, "wave": s.wave, "items": list(s.items)}
    if s.api == "sei":
        out["body"] = s.body  # the exact request body apply will send (SPEC.md §4)
    return out


def plan_from_document(doc: dict[str, Any]) -> Plan:
    """Rebuild a Plan from a saved document (payloads included); submissions are rebuilt from changes."""
    changes = tuple(
        Change(
            address=c["address"],
            action=Action(c["action"]),
            source=Source(c["source"]["file"], int(c["source"]["line"])),
            fields=tuple(FieldChange(f["path"], f.get("before"), f.get("after")) for f in c.get("fields", [])),
            removed_sleeves=tuple(c.get("removed_sleeves", [])),
            added_sleeves=int(c.get("added_sleeves", 0)),
            payload=c.get("payload") if c["action"] == Action.CREATE.value else None,
            fingerprint=c.get("fingerprint", ""),
            # older saved plans carried the whole registration instead of its id
            registration_id=c.get("registration_id", (c.get("payload") or {}).get("registrationId")),
        )
        for c in doc["changes"]
    )
    by_address = {c.address: c for c in changes}
    submissions = tuple(
        Submission(
            s["api"],
            s["method"],
            s["path"],
            tuple(s["items"]),
            int(s["wave"]),
            body=s.get("body") if s["api"] == "sei" else None,
            fingerprints=() if s["api"] == "sei" else tuple(by_address[a].fingerprint for a in s["items"]),
        )
        for s in doc["submissions"]
    )
    ignored = tuple(IgnoredChange(i["address"], i["path"], i["reason"]) for i in doc.get("ignored", []))
    results = tuple(
        PolicyResult(
            r["policy"], r["rule"], r["enforcement"], bool(r["passed"]), r["message"], tuple(r.get("addresses", ()))
        )
        for r in (doc.get("policy") or {}).get("results", [])
    )
    return Plan(changes, submissions, int(doc["summary"]["unchanged"]), ignored, results, scope=doc.get("partial"))
