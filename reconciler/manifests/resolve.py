"""Schema-valid documents → desired resources: templates merged, batch defaults inherited, rules checked.

Cross-document rules live here because only here is the whole tree in view: unique names,
registrationIds, batchIds and tradeTicketIds, templates that exist. A duplicate points at the second
occurrence and names the first.
"""

from __future__ import annotations

from typing import Any

from reconciler.errors import Diagnostic
from reconciler.fields import INSTRUCTION_FIELDS
from reconciler.manifests.loader import Document
from reconciler.model import DesiredBatch, DesiredInstruction, DesiredRegistration, DesiredSleeve, Source
from reconciler.rules import cusip_check_digit, iter_registration_problems

__all__ = ["resolve_documents"]

# Fields an instruction needs once batch defaults are merged; SEI cannot book a ticket without them.
REQUIRED_INSTRUCTION_FIELDS = ("masterOrderId", "side", "ticker", "cusip", "target")


def _source(doc: Document, path: tuple) -> Source:
    line, col = doc.pos(path)
    return Source(doc.file, line, col)


class _Seen:
    """First occurrence of an identity, so the second can name it."""

    def __init__(self, what: str, diags: list[Diagnostic]):
        self.what = what
        self.first: dict[Any, Source] = {}
        self.diags = diags

    def check(self, key: Any, doc: Document, path: tuple) -> bool:
        src = _source(doc, path)
        if key in self.first:
            f = self.first[key]
            self.diags.append(Diagnostic(src.file, src.line, src.col,
                                         f"duplicate {self.what} {key} (first at {f.file}:{f.line})",
                                         "each must be unique across the manifests"))
            return False
        self.first[key] = src
        return True


def resolve_documents(typed: list[tuple[str, Document]]) -> tuple[tuple, tuple, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    templates: dict[str, Document] = {}
    names = {k: _Seen(f"{k} name", diags) for k in ("SleeveRegistration", "SleeveTemplate", "TradeBatch")}
    for kind, doc in typed:
        if names[kind].check(doc.data["metadata"]["name"], doc, ("metadata", "name")) and kind == "SleeveTemplate":
            templates[doc.data["metadata"]["name"]] = doc

    registrations: list[DesiredRegistration] = []
    batches: list[DesiredBatch] = []
    reg_ids = _Seen("registrationId", diags)
    batch_ids = _Seen("batchId", diags)
    ticket_ids = _Seen("tradeTicketId", diags)
    reported: set[Diagnostic] = set()

    def report(d: Diagnostic) -> None:
        if d not in reported:  # a template's list problem is reported once, not once per user
            reported.add(d)
            diags.append(d)

    for name, doc in templates.items():
        spec = doc.data["spec"]
        _check_sleeves(spec, spec.get("accountSleeves") or [], doc, report)

    for kind, doc in typed:
        if kind == "SleeveRegistration":
            reg = _resolve_registration(doc, templates, report)
            if reg and reg_ids.check(reg.registration_id, doc, ("spec", "registrationId")):
                registrations.append(reg)
        elif kind == "TradeBatch":
            batch = _resolve_batch(doc, ticket_ids, report)
            if batch_ids.check(batch.batch_id, doc, ("spec", "batchId")):
                batches.append(batch)
    return tuple(registrations), tuple(batches), diags


def _check_sleeves(fields: dict, sleeves: list[dict], list_doc: Document, report) -> None:
    for path, message, hint in iter_registration_problems(fields, sleeves, complete=False):
        report(list_doc.diagnostic(("spec",) + path, message, hint))


def _resolve_registration(doc: Document, templates: dict[str, Document], report) -> DesiredRegistration | None:
    spec = doc.data["spec"]
    meta = doc.data["metadata"]
    merged: dict[str, Any] = {}
    sleeves_doc = doc
    template_name = spec.get("template")
    if template_name is not None:
        tdoc = templates.get(template_name)
        if tdoc is None:
            report(doc.diagnostic(("spec", "template"), f"template '{template_name}' does not exist",
                                  "define a SleeveTemplate with that metadata.name, or fix the name"))
            return None
        merged.update({k: v for k, v in tdoc.data["spec"].items()})
        if "accountSleeves" not in spec:
            sleeves_doc = tdoc
    merged.update({k: v for k, v in spec.items() if k not in ("registrationId", "template")})
    sleeves = merged.pop("accountSleeves", None) or []
    if sleeves_doc is doc:
        _check_sleeves(merged, sleeves, doc, report)
    elif any(f in spec for f in ("contributionAllocationMethod", "distributionAllocationMethod")):
        _check_sleeves(merged, sleeves, sleeves_doc, report)
    return DesiredRegistration(
        name=meta["name"],
        registration_id=spec["registrationId"],
        fields=merged,
        sleeves=tuple(DesiredSleeve(dict(s), _source(sleeves_doc, ("spec", "accountSleeves", i)))
                      for i, s in enumerate(sleeves)),
        source=_source(doc, ()),
        labels=dict(meta.get("labels") or {}),
        template=template_name,
    )


def _resolve_batch(doc: Document, ticket_ids: _Seen, report) -> DesiredBatch:
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
            report(doc.diagnostic(path, f"instruction {tid} has no {', '.join(missing)}",
                                  "set it on the instruction or as a default on the batch"))
        cusip = fields.get("cusip")
        if isinstance(cusip, str) and len(cusip) == 9:
            check = cusip_check_digit(cusip[:8])
            if check is None or str(check) != cusip[8]:
                where = path + ("cusip",) if "cusip" in own else ("spec", "cusip")
                report(doc.diagnostic(where, f"cusip '{cusip}' fails its check digit"
                                      + (f" (expected {check})" if check is not None else ""),
                                      "copy the CUSIP again from the security master"))
        if ticket_ids.check(tid, doc, path + ("tradeTicketId",)):
            instructions.append(DesiredInstruction(tid, fields, spec["batchId"], meta["name"],
                                                   _source(doc, path), labels))
    return DesiredBatch(meta["name"], spec["batchId"], tuple(instructions), _source(doc, ()), labels)
