"""The whole-tree stage of resolving manifests: fed document by document in file order, it merges
templates into the registrations that name one and checks what spans documents: unique names,
registrationIds, batchIds and tradeTicketIds, and templates that exist. A duplicate points at the
second occurrence and names the first. (The per-document stage is resolve.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from reconciler.errors import Diagnostic
from reconciler.manifests.resolve import Resolved, _check_sleeves, _registration
from reconciler.model import DesiredBatch, DesiredRegistration, Policy, Source
from reconciler.yamldoc import Document

__all__ = ["TreeResolver"]


class TreeResolver:
    """The whole-tree stage, fed document by document in file order, so a plan can start on the
    first resources while later files are still being parsed.

    `add` yields each registration (without a template) and trade batch as soon as it is known to be
    no duplicate of an earlier one; `finish` merges templates into the registrations that name one
    (a template may come later in the tree) and returns every cross-document problem. It keeps only
    keys and sources, never the resources it yielded, so memory is the caller's to choose.
    A caller must discard what was yielded when `finish` returns diagnostics.
    """

    def __init__(self) -> None:
        self.diags: list[Diagnostic] = []
        self._first_name: dict[tuple[str, str], Source] = {}
        self._first_reg: dict[int, Source] = {}
        self._first_batch: dict[str, Source] = {}
        self._first_ticket: dict[int, Source] = {}
        self._templates: dict[str, Document] = {}
        self._waiting: list[Resolved] = []  # registrations that name a template not seen yet
        self._policies: list[Policy] = []
        self._reported: set[Diagnostic] = set()
        self._report = _collector(self.diags, self._reported)
        self._sleeves: dict[str, tuple] = {}  # template name → its DesiredSleeves, shared by every user

    def _known_template(self, doc: Document) -> bool:
        name = doc.data.get("spec", {}).get("template")
        return isinstance(name, str) and name in self._templates

    def add(self, items: list[Resolved]) -> Iterator[DesiredRegistration | DesiredBatch]:
        for r in items:
            self.diags.extend(r.diagnostics)
            if _duplicate(self.diags, self._first_name, (r.kind, r.name), r.name_source, f"{r.kind} name {r.name}"):
                continue
            if r.kind == "SleeveTemplate" and r.document is not None:
                self._templates[r.name] = r.document
            elif r.policy is not None:
                self._policies.append(r.policy)
            elif r.kind == "SleeveRegistration":
                if r.registration is None and r.document is not None and self._known_template(r.document):
                    # its template came first (tree.py puts template files first): resolved now, not held
                    reg = _with_template(r.document, self._templates, self._report, self._sleeves)
                    if reg is not None and not self._duplicate_registration(reg.registration_id, r.key_source):
                        yield reg
                elif r.registration is None:
                    self._waiting.append(r)
                elif not self._duplicate_registration(r.registration.registration_id, r.key_source):
                    yield r.registration
            elif r.batch is not None:
                batch = r.batch
                unique = tuple(
                    i
                    for i in batch.instructions
                    if not _duplicate(
                        self.diags,
                        self._first_ticket,
                        i.ticket_id,
                        r.ticket_sources[i.ticket_id],
                        f"tradeTicketId {i.ticket_id}",
                    )
                )
                if not _duplicate(
                    self.diags, self._first_batch, batch.batch_id, r.key_source, f"batchId {batch.batch_id}"
                ):
                    yield (
                        DesiredBatch(batch.name, batch.batch_id, unique, batch.source, batch.labels)
                        if len(unique) != len(batch.instructions)
                        else batch
                    )

    def _duplicate_registration(self, registration_id: int, source: Source) -> bool:
        return _duplicate(self.diags, self._first_reg, registration_id, source, f"registrationId {registration_id}")

    def finish(self) -> tuple[tuple[DesiredRegistration, ...], tuple[Policy, ...], list[Diagnostic]]:
        """(registrations that name a template, policies, every problem found in the tree)."""
        self._reported.update(self.diags)
        for doc in self._templates.values():
            spec = doc.data["spec"]
            _check_sleeves(spec, spec.get("accountSleeves") or [], doc, self._report)
        late = []
        for r in self._waiting:
            assert r.document is not None  # a registration that names a template keeps its document
            reg = _with_template(r.document, self._templates, self._report, self._sleeves)
            if reg is None:
                continue
            first = self._first_reg.get(reg.registration_id)
            if first is not None and r.key_source < first:  # the earlier file is the first, as without templates
                self._first_reg[reg.registration_id] = r.key_source
                _duplicate(
                    self.diags,
                    {reg.registration_id: r.key_source},
                    reg.registration_id,
                    first,
                    f"registrationId {reg.registration_id}",
                )
            elif not self._duplicate_registration(reg.registration_id, r.key_source):
                late.append(reg)
        return tuple(late), tuple(self._policies), self.diags


def _duplicate(diags: list[Diagnostic], first: dict, key: Any, src: Source, what: str) -> bool:
    if key in first:
        f = first[key]
        diags.append(
            Diagnostic(
                src.file,
                src.line,
                src.col,
                f"duplicate {what} (first at {f.file}:{f.line})",
                "each must be unique across the manifests",
            )
        )
        return True
    first[key] = src
    return False


def _collector(diags: list[Diagnostic], reported: set[Diagnostic]):
    def report(d: Diagnostic) -> None:
        if d not in reported:  # a template's list problem is reported once, not once per user
            reported.add(d)
            diags.append(d)

    return report


def _with_template(
    doc: Document, templates: dict[str, Document], report, shared: dict[str, tuple] | None = None
) -> DesiredRegistration | None:
    """`shared`: template name → the DesiredSleeves built from it, reused by every registration that takes
    its sleeves unchanged (100,000 registrations on 5 templates hold 5 sets of sleeves, not 100,000)."""
    spec = doc.data["spec"]
    name = spec["template"]
    tdoc = templates.get(name)
    if tdoc is None:
        report(
            doc.diagnostic(
                ("spec", "template"),
                f"template '{name}' does not exist",
                "define a SleeveTemplate with that metadata.name, or fix the name; only the paths given are "
                "read, so one defined elsewhere in the tree needs the whole tree (e.g. manifests/)",
            )
        )
        return None
    return _registration(doc, tdoc.data["spec"], tdoc, report, shared, name)
