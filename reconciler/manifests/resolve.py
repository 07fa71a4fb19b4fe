"""Schema-valid documents → desired resources: templates merged, batch defaults inherited, rules checked.

Two stages, so the per-document work can run in worker processes next to parsing:
- `resolve_document` (per file, parallel): a registration without a template and a trade batch
  resolve on their own, with their business rules; templates and registrations naming one wait.
- `TreeResolver` (whole tree, fed in file order; manifests/tree_stage.py): template merges, and the
  cross-document rules (unique names, registrationIds, batchIds, tradeTicketIds, templates that exist).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import Diagnostic
from reconciler.fields import INSTRUCTION_FIELDS, SLEEVE_TYPES
from reconciler.manifests.rules import cusip_check_digit, iter_registration_problems
from reconciler.model import (
    DesiredBatch,
    DesiredInstruction,
    DesiredRegistration,
    DesiredSleeve,
    Policy,
    Source,
    Window,
)
from reconciler.yamldoc import Document

__all__ = ["Resolved", "resolve_document", "rule_diagnostics"]

# Fields an instruction needs once batch defaults are merged; SEI cannot book a ticket without them.
REQUIRED_INSTRUCTION_FIELDS = ("masterOrderId", "side", "ticker", "cusip", "target")


@dataclass
class Resolved:
    """One document after the per-document stage: a resource, or the document kept for the tree stage."""

    kind: str
    name: str
    name_source: Source
    registration: DesiredRegistration | None = None  # one that names no template
    batch: DesiredBatch | None = None
    policy: Policy | None = None
    document: Document | None = None  # templates and their users
    id_source: Source | None = None  # registrationId or batchId key

    @property
    def key_source(self) -> Source:
        """Where its identity is declared: registrationId or batchId, else its name."""
        return self.id_source or self.name_source

    ticket_sources: dict[int, Source] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def _source(doc: Document, path: tuple) -> Source:
    line, col = doc.pos(path)
    return Source(doc.file, line, col)


def _window_problems(doc: Document, windows: Any) -> list[Diagnostic]:
    """What a schema cannot say about windows: a known time zone, `from` before `to`. Tolerant of
    wrong types (the schema reports those), so it also runs on documents with schema errors."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    out = []
    for i, w in enumerate(windows if isinstance(windows, list) else []):
        if not isinstance(w, dict):
            continue
        path = ("spec", "windows", i)
        tz = w.get("timezone")
        if isinstance(tz, str) and tz:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                out.append(
                    doc.diagnostic(
                        path + ("timezone",),
                        f"timezone {tz!r} is not a known IANA time zone",
                        "use a name such as America/New_York or Europe/London",
                    )
                )
        start, end = w.get("from"), w.get("to")
        if isinstance(start, str) and isinstance(end, str) and start >= end:
            out.append(
                doc.diagnostic(
                    path + ("from",),
                    f"from {start} is not before to {end}",
                    "a window runs from an earlier to a later time of the same day; use 24:00 "
                    "for midnight, or two windows across it",
                )
            )
    return out


def _policy(doc: Document, diags: list[Diagnostic]) -> Policy:
    spec = doc.data["spec"]
    diags.extend(_window_problems(doc, spec.get("windows")))
    windows = [Window(w["api"], tuple(w["days"]), w["from"], w["to"], w["timezone"]) for w in spec.get("windows") or []]
    return Policy(
        doc.data["metadata"]["name"],
        spec.get("enforcement", "hard"),
        dict(spec.get("limits") or {}),
        tuple(windows),
        _source(doc, ()),
        dict(spec.get("approvals") or {}),
    )


def resolve_document(kind: str, doc: Document) -> Resolved:
    meta = doc.data["metadata"]
    spec = doc.data["spec"]
    out = Resolved(kind, meta["name"], _source(doc, ("metadata", "name")))
    if kind == "Policy":
        out.policy = _policy(doc, out.diagnostics)
        return out
    if kind == "SleeveTemplate" or (kind == "SleeveRegistration" and "template" in spec):
        out.document = doc
        if kind == "SleeveRegistration":
            out.id_source = _source(doc, ("spec", "registrationId"))
        return out
    if kind == "SleeveRegistration":
        out.id_source = _source(doc, ("spec", "registrationId"))
        out.registration = _registration(doc, {}, doc, out.diagnostics)
    else:
        out.id_source = _source(doc, ("spec", "batchId"))
        out.batch = _batch(doc, out.ticket_sources, out.diagnostics)
    return out


def _check_sleeves(fields: dict, sleeves: list[dict], list_doc: Document, report) -> None:
    for path, message, hint in iter_registration_problems(fields, sleeves, complete=False):
        report(list_doc.diagnostic(("spec",) + path, message, hint))


def _registration(
    doc: Document,
    inherited: dict,
    tdoc: Document,
    report,
    shared: dict[str, tuple] | None = None,
    template: str | None = None,
) -> DesiredRegistration:
    """Merge template fields (`inherited`) under the registration's own; own accountSleeves replace."""
    spec = doc.data["spec"]
    meta = doc.data["metadata"]
    report = report.append if isinstance(report, list) else report
    merged: dict[str, Any] = dict(inherited)
    sleeves_doc = tdoc if "accountSleeves" not in spec and inherited else doc
    merged.update({k: v for k, v in spec.items() if k not in ("registrationId", "template")})
    sleeves = merged.pop("accountSleeves", None) or []
    if sleeves_doc is doc or any(f in spec for f in ("contributionAllocationMethod", "distributionAllocationMethod")):
        _check_sleeves(merged, sleeves, sleeves_doc, report)
    reuse = shared if sleeves_doc is not doc and template is not None else None  # the template's own sleeves
    built = reuse.get(template) if reuse is not None and template is not None else None
    if built is None:
        built = tuple(
            DesiredSleeve(dict(s), _source(sleeves_doc, ("spec", "accountSleeves", i))) for i, s in enumerate(sleeves)
        )
        if reuse is not None and template is not None:
            reuse[template] = built
    return DesiredRegistration(
        name=meta["name"],
        registration_id=spec["registrationId"],
        fields=merged,
        sleeves=built,
        source=_source(doc, ()),
        labels=dict(meta.get("labels") or {}),
        template=spec.get("template"),
    )


def _cusip_problems(doc: Document, path: tuple, fields: dict, own: dict) -> list[Diagnostic]:
    cusip = fields.get("cusip")
    if isinstance(cusip, str) and len(cusip) == 9:
        check = cusip_check_digit(cusip[:8])
        if check is None or str(check) != cusip[8]:
            where = path + ("cusip",) if "cusip" in own else ("spec", "cusip")
            return [
                doc.diagnostic(
                    where,
                    f"cusip '{cusip}' fails its check digit" + (f" (expected {check})" if check is not None else ""),
                    "copy the CUSIP again from the security master",
                )
            ]
    return []


_NUMERIC_SLEEVE_FIELDS = (
    "targetAllocation",
    "contributionAllocation",
    "distributionAllocation",
    "corporateActionAllocation",
    "toleranceUpper",
    "toleranceLower",
)


def _well_typed_sleeve(s: Any) -> dict:
    """A sleeve with only the values the rules can compare: wrong types are the schema's to report."""
    if not isinstance(s, dict):
        return {}
    out: dict[str, Any] = {
        k: v
        for k, v in s.items()
        if k in _NUMERIC_SLEEVE_FIELDS and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    for k in ("sleeveType",):
        if isinstance(s.get(k), str):
            out[k] = s[k]
    if isinstance(s.get("targetBalanceType"), (int, str)):
        out["targetBalanceType"] = s["targetBalanceType"]
    for k in ("modelAggId", "accountId"):
        if isinstance(s.get(k), int) and not isinstance(s.get(k), bool):
            out[k] = s[k]
    if isinstance(s.get("model"), dict) and isinstance(s["model"].get("id"), int):
        out["model"] = {"id": s["model"]["id"]}
    return out


def rule_diagnostics(kind: str, doc: Document) -> list[Diagnostic]:
    """The business rules of a document that also has schema errors, on its well-typed values only,
    so that every independent error is reported at once."""
    data: dict[str, Any] = doc.data if isinstance(doc.data, dict) else {}
    spec: dict[str, Any] = data["spec"] if isinstance(data.get("spec"), dict) else {}
    out: list[Diagnostic] = []
    if kind == "Policy":
        return _window_problems(doc, spec.get("windows"))
    if kind == "TradeBatch":
        defaults = {k: v for k, v in spec.items() if k in INSTRUCTION_FIELDS and k != "batchId"}
        instructions: list[Any] = spec["instructions"] if isinstance(spec.get("instructions"), list) else []
        for i, own in enumerate(instructions):
            if isinstance(own, dict):
                out += _cusip_problems(doc, ("spec", "instructions", i), {**defaults, **own}, own)
        return out
    sleeves = spec.get("accountSleeves")
    if isinstance(sleeves, list):
        fields = {k: v for k, v in spec.items() if k.endswith("AllocationMethod") and isinstance(v, str)}
        # a sleeve whose type the schema refused may or may not count: a sum over the rest would be a
        # cascade of that one error, not an independent one, so the whole-list rules wait for its fix
        unsure = any(not isinstance(x, dict) or x.get("sleeveType") not in SLEEVE_TYPES for x in sleeves)
        for path, message, hint in iter_registration_problems(
            fields, [_well_typed_sleeve(x) for x in sleeves], complete=False
        ):
            if not (unsure and path == ("accountSleeves",)):
                out.append(doc.diagnostic(("spec",) + path, message, hint))
    return out


def _batch(doc: Document, ticket_sources: dict[int, Source], diags: list[Diagnostic]) -> DesiredBatch:
    spec = doc.data["spec"]
    meta = doc.data["metadata"]
    labels = dict(meta.get("labels") or {})
    defaults = {k: v for k, v in spec.items() if k in INSTRUCTION_FIELDS and k != "batchId"}
    instructions = []
    for i, own in enumerate(spec["instructions"]):
        path = ("spec", "instructions", i)
        fields = {"batchId": spec["batchId"], **defaults, **own}
        tid = fields["tradeTicketId"]
        missing = [f for f in REQUIRED_INSTRUCTION_FIELDS if f not in fields]
        if missing:
            diags.append(
                doc.diagnostic(
                    path,
                    f"instruction {tid} has no {', '.join(missing)}",
                    "set it on the instruction or as a default on the batch",
                )
            )
        diags.extend(_cusip_problems(doc, path, fields, own))
        if tid in ticket_sources:  # a duplicate inside one file: keep the first for the tree check
            src = _source(doc, path + ("tradeTicketId",))
            f = ticket_sources[tid]
            diags.append(
                Diagnostic(
                    src.file,
                    src.line,
                    src.col,
                    f"duplicate tradeTicketId {tid} (first at {f.file}:{f.line})",
                    "each must be unique across the manifests",
                )
            )
            continue
        ticket_sources[tid] = _source(doc, path + ("tradeTicketId",))
        instructions.append(DesiredInstruction(tid, fields, spec["batchId"], meta["name"], _source(doc, path), labels))
    return DesiredBatch(meta["name"], spec["batchId"], tuple(instructions), _source(doc, ()), labels)
