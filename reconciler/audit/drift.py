"""Drift audits: what differs between the manifests and live state, field by field, and who changed it.

The same differ as plan (declared fields only), plus attribution: `editedBy`/`editedDate` of the
live object and the registration's Histories entries that touched a drifted field. Ignore rules
hide known drift until they expire; an expired rule stops hiding and the report says so. Ignored
drift is counted and listed apart, never silently dropped.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass, field

from reconciler.config.ignore import IgnoreRule
from reconciler.errors import ApiError
from reconciler.fields import COUNTED_SLEEVE_TYPES, utc_text
from reconciler.model import DesiredRegistration, FieldChange, ManifestSet, Source
from reconciler.plan.diff import diff_instruction, diff_registration, sleeve_label
from reconciler.version import __version__

__all__ = ["DriftReport", "Finding", "FindingKind", "FindingStatus", "build_drift_report"]

_SLEEVE_PATH = re.compile(r"^accountSleeves\[(?P<label>.+?)\](?P<rest>.*)$")


class FindingKind(enum.StrEnum):
    REGISTRATION = "registration"
    INSTRUCTION = "instruction"


class FindingStatus(enum.StrEnum):
    """Plain strings too (StrEnum): documents, templates and tables show the value."""

    DRIFTED = "drifted"  # live differs from a declared field
    MISSING = "missing"  # declared, absent from live state
    CONFLICT = "conflict"  # a ticket at SEI with other values (it cannot be changed)


@dataclass(frozen=True)
class Finding:
    address: str
    kind: FindingKind
    status: FindingStatus
    source: Source
    fields: tuple[FieldChange, ...] = ()
    edited_by: str | None = None
    edited_date: str | None = None  # as the vendor wrote it; reports show `edited_utc`

    @property
    def edited_utc(self) -> str | None:
        return utc_text(self.edited_date) or self.edited_date

    history: list[dict] = field(default_factory=list)  # matching Histories entries, newest first
    expired_rules: list[dict] = field(default_factory=list)
    allocation: list[dict] = field(default_factory=list)  # per sleeve: label, declared, live, state (for charts)
    trade: dict = field(default_factory=dict)  # a missing instruction: side, quantity, price, notional


@dataclass(frozen=True)
class DriftReport:
    generated_at: str
    tool_version: str
    manifests_digest: str
    findings: list[Finding]
    ignored: list[dict]
    expired_rules: list[dict]
    checked: int
    checked_by_kind: dict[str, int] = field(default_factory=dict)
    audit: dict = field(default_factory=dict)  # what was audited, and by whom: endpoints, commit, tool, operator

    @property
    def has_drift(self) -> bool:
        return bool(self.findings)


def build_drift_report(
    manifests: ManifestSet,
    live,
    vendors,
    rules: tuple[IgnoreRule, ...],
    today: dt.date | None = None,
    now: dt.datetime | None = None,
    audit: dict | None = None,
) -> DriftReport:
    today = today or dt.date.today()
    active = tuple(r for r in rules if r.active(today))
    expired = tuple(r for r in rules if not r.active(today))
    findings: list[Finding] = []
    ignored: list[dict] = []
    for desired in sorted(manifests.registrations, key=lambda r: r.address):
        current = live.registrations.get(desired.registration_id)
        if current is None:
            findings.append(Finding(desired.address, FindingKind.REGISTRATION, FindingStatus.MISSING, desired.source))
            continue
        d = diff_registration(desired, current, active, today)
        ignored += [_ignored(i.address, i.path, i.reason, rules) for i in d.ignored]
        if not d.fields:
            continue
        findings.append(
            Finding(
                desired.address,
                FindingKind.REGISTRATION,
                FindingStatus.DRIFTED,
                desired.source,
                d.fields,
                current.get("editedBy"),
                current.get("editedDate"),
                history=_history(vendors, desired, d),
                expired_rules=_expired_hits(desired.address, d.fields, expired),
                allocation=_allocation(desired, current, {i.path for i in d.ignored}),
            )
        )
    for instruction in sorted(manifests.instructions, key=lambda i: i.ticket_id):
        rows = live.tickets.get(instruction.ticket_id, [])
        di = diff_instruction(instruction, rows, active, today)
        ignored += [_ignored(i.address, i.path, i.reason, rules) for i in di.ignored]
        if not di.exists:
            fields = instruction.fields
            price = fields.get("orderGenerationPrice")
            target = fields.get("target")
            trade = {
                "side": fields.get("side"),
                "ticker": fields.get("ticker"),
                "quantity": target,
                "price": price,
                "notional": round(float(target or 0) * float(price), 2) if price is not None else None,
                "batchId": fields.get("batchId"),
            }
            findings.append(
                Finding(
                    instruction.address, FindingKind.INSTRUCTION, FindingStatus.MISSING, instruction.source, trade=trade
                )
            )
        elif di.conflict:
            # SEI records no editor; the row's last change date is the best attribution it offers
            findings.append(
                Finding(
                    instruction.address,
                    FindingKind.INSTRUCTION,
                    FindingStatus.CONFLICT,
                    instruction.source,
                    di.fields,
                    None,
                    rows[0].get("changeDate") or rows[0].get("createDate"),
                    expired_rules=_expired_hits(instruction.address, di.fields, expired),
                )
            )
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)  # one time zone: UTC
    return DriftReport(
        now.isoformat(timespec="seconds"),
        __version__,
        manifests.digest,
        findings,
        ignored,
        [{"address": r.address, "field": r.field, "reason": r.reason, "expired": str(r.expires)} for r in expired],
        len(manifests.registrations) + len(manifests.instructions),
        {"registration": len(manifests.registrations), "instruction": len(manifests.instructions)},
        {**(audit or {}), "tool_version": __version__, "generated_at": now.isoformat(timespec="seconds")},
    )


def _ignored(address: str, path: str, reason: str, rules: tuple[IgnoreRule, ...]) -> dict:
    rule = next((r for r in rules if r.reason == reason and r.matches(address, path)), None)
    return {
        "address": address,
        "path": path,
        "reason": reason,
        "expires": rule.expires.isoformat() if rule and rule.expires else None,
    }


def _expired_hits(address: str, fields: tuple[FieldChange, ...], expired: tuple[IgnoreRule, ...]) -> list[dict]:
    return [
        {"path": f.path, "reason": r.reason, "expired": str(r.expires)}
        for f in fields
        for r in expired
        if r.matches(address, f.path)
    ]


def _allocation(desired: DesiredRegistration, live: dict, ignored_paths: set[str]) -> list[dict]:
    """Declared vs live targetAllocation per Normal/Unmanaged sleeve, for the report's chart.

    `state` tells the sleeves apart: `matched`, `absent` (declared, not live: apply adds it),
    `removed` (live, not declared: apply removes it) and `ignored` (a difference an ignore rule hides,
    drawn at the declared value, not as drift)."""
    from reconciler.plan.diff import match_sleeves

    pairs, unmatched, _ = match_sleeves(desired, live)
    rows = []
    for label, declared, ls in pairs:
        if declared.get("sleeveType") in COUNTED_SLEEVE_TYPES:
            want = float(declared.get("targetAllocation") or 0)
            have = float(ls.get("targetAllocation") or 0) if ls else 0.0
            hidden = f"accountSleeves[{label}].targetAllocation" in ignored_paths
            rows.append(
                {
                    "label": label,
                    "declared": want,
                    "live": want if hidden else have,
                    "state": "ignored" if hidden else ("absent" if ls is None else "matched"),
                }
            )
    for s in unmatched:
        if s.get("sleeveType") in COUNTED_SLEEVE_TYPES:
            rows.append(
                {
                    "label": sleeve_label(s),
                    "declared": 0.0,
                    "live": float(s.get("targetAllocation") or 0),
                    "state": "removed",
                }
            )
    return rows


def _history(vendors, desired: DesiredRegistration, d) -> list[dict]:
    """The Histories entries that touched a drifted field (by the field names Orion records)."""
    wanted: set[str] = set()
    for f in d.fields:
        m = _SLEEVE_PATH.match(f.path)
        if m:
            aid = d.labels.get(m.group("label"))
            wanted.add(f"accountSleeves[{aid}]{m.group('rest')}")
        else:
            wanted.add(f.path.split(".")[0])
    try:
        entries = vendors.orion.histories(desired.registration_id)
    except ApiError:
        return [{"note": "Histories could not be read"}]
    out = []
    for e in entries:
        changes = [c for c in e.get("changes") or [] if c.get("field") in wanted]
        if changes:
            out.append(
                {
                    "editedBy": e.get("editedBy"),
                    "editedDate": e.get("editedDate"),
                    "editedDateUtc": utc_text(e.get("editedDate")) or e.get("editedDate"),
                    "changeType": e.get("changeType"),
                    "changes": changes,
                }
            )
    if not out and entries and not any("changes" in e for e in entries):
        # field-level `changes` in Histories are [assumed] (API.md documents changeType, editedBy and
        # editedDate only): without them, the newest entry is the best attribution there is
        e = entries[0]
        out.append(
            {
                "editedBy": e.get("editedBy"),
                "editedDate": e.get("editedDate"),
                "editedDateUtc": utc_text(e.get("editedDate")) or e.get("editedDate"),
                "changeType": e.get("changeType"),
                "changes": [],
                "note": f"the latest change ({e.get('changeType')}) by {e.get('editedBy')} at "
                f"{utc_text(e.get('editedDate')) or e.get('editedDate')}; Orion's Histories name no fields",
            }
        )
    return out
