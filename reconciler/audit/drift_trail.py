"""A drift finding's life in the audit trail: when an audit first saw it, and how it ended.

A drift report describes one moment. The history keeps the finding's life instead: a `seen` record
when an audit first finds drift on an address (who edited it at the vendor, and when), and an
`ended` record when a later full audit no longer finds it, with how it ended:

- `reverted`: an apply run (named) wrote the declared values back after the drift was seen;
- `ignored`: an ignore rule now hides it (named, with its end date);
- `adopted`: the manifests changed since (the commit named) and now declare what is live;
- `cleared`: none of those: live state matches the manifests again (changed back at the vendor).

Between the two, each audit that still sees it moves its `last_seen`, kept beside the chain and
written into the `ended` record. A narrowed audit (--target, --exclude, --selector) records what it
sees but ends nothing: it did not look at the rest.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from reconciler.audit.drift import DriftReport, Finding
from reconciler.state.history import History, HistoryFilter, record_time

__all__ = ["record_drift"]


def record_drift(history: History, report: DriftReport, *, narrowed: bool, now: dt.datetime) -> list[dict[str, Any]]:
    """Append what this audit saw appear and (unless narrowed) end; returns the sealed records."""
    time = record_time(now)
    open_findings: dict[str, dict[str, Any]] = {}
    for r in history.records(HistoryFilter(kind="drift")):
        if r.get("event") == "seen":
            open_findings[r["address"]] = r
        else:
            open_findings.pop(r["address"], None)
    current = {f.address: f for f in report.findings}
    audit = report.audit or {}
    records = [_seen(f, time, audit) for address, f in current.items() if address not in open_findings]
    ending = [] if narrowed else [seen for address, seen in open_findings.items() if address not in current]
    if ending:
        last_seen = history.last_seen()
        evidence = _Evidence(history, report, min(seen["first_seen"] for seen in ending))
        for seen in ending:
            records.append(_ended(evidence, report, seen, time, last_seen.get(seen["address"], seen["time"])))
    sealed = history.append(records)
    history.mark_seen(current, time)
    return sealed


def _seen(f: Finding, time: str, audit: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "drift",
        "event": "seen",
        "time": time,
        "address": f.address,
        "status": f.status.value,
        "fields": [{"path": c.path, "live": c.before, "declared": c.after} for c in f.fields],
        "edited_by": f.edited_by,
        "edited_at": f.edited_utc,
        "first_seen": time,
        "commit": audit.get("commit"),
        "operator": {"name": audit.get("operator"), "ci_run_url": audit.get("ci_run_url")},
        "emergency": False,
    }


def _ended(evidence: _Evidence, report: DriftReport, seen: dict[str, Any], time: str, last_seen: str) -> dict[str, Any]:
    address = seen["address"]
    audit = report.audit or {}
    how, detail = _how(evidence, seen, audit)
    return {
        "kind": "drift",
        "event": "ended",
        "time": time,
        "address": address,
        "first_seen": seen["first_seen"],
        "last_seen": last_seen,
        "seen_record": seen.get("seq"),
        "ended_by": how,
        "how": detail,
        "commit": audit.get("commit"),
        "operator": {"name": audit.get("operator"), "ci_run_url": audit.get("ci_run_url")},
        "emergency": False,
    }


class _Evidence:
    """What tells how findings ended, read once per audit (not once per finding): the ignore rules that
    now hide each address, and the applied change records since the earliest finding's first sighting."""

    def __init__(self, history: History, report: DriftReport, since: str) -> None:
        self.ignored: dict[str, dict[str, Any]] = {}
        for i in report.ignored:
            self.ignored.setdefault(str(i.get("address")), i)
        self.applied: dict[str, list[dict[str, Any]]] = {}
        for r in history.records(HistoryFilter(kind="change", since=since)):
            if r.get("outcome") == "applied":
                self.applied.setdefault(str(r.get("address")), []).append(r)


def _how(evidence: _Evidence, seen: dict[str, Any], audit: dict[str, Any]) -> tuple[str, str]:
    address = seen["address"]
    rule = evidence.ignored.get(address)
    if rule is not None:
        return "ignored", f"hidden by ignore rule {rule.get('reason')!r} until {rule.get('expires') or 'no end date'}"
    applied = [r for r in evidence.applied.get(address, []) if str(r.get("time", "")) >= seen["first_seen"]]
    if applied:
        last = applied[-1]
        by = f" (pull request #{last['pull_request']})" if last.get("pull_request") else ""
        return "reverted", f"reverted by apply run {last.get('run')} at {last.get('time')}{by}"
    if audit.get("commit") and seen.get("commit") and audit.get("commit") != seen.get("commit"):
        return "adopted", f"adopted: the manifests at commit {audit['commit']} declare what is live"
    return "cleared", "live state matches the manifests again (changed back at the vendor)"
