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
    if not narrowed:
        last_seen = history.last_seen()
        for address, seen in open_findings.items():
            if address not in current:
                records.append(_ended(history, report, seen, time, last_seen.get(address, seen["time"])))
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


def _ended(history: History, report: DriftReport, seen: dict[str, Any], time: str, last_seen: str) -> dict[str, Any]:
    address = seen["address"]
    audit = report.audit or {}
    how, detail = _how(history, report, seen, audit)
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


def _how(history: History, report: DriftReport, seen: dict[str, Any], audit: dict[str, Any]) -> tuple[str, str]:
    address = seen["address"]
    rules = [i for i in report.ignored if i.get("address") == address]
    if rules:
        r = rules[0]
        return "ignored", f"hidden by ignore rule {r.get('reason')!r} until {r.get('expires') or 'no end date'}"
    applied = [
        r
        for r in history.records(HistoryFilter(kind="change", since=seen["first_seen"]))
        if r.get("address") == address and r.get("outcome") == "applied"
    ]
    if applied:
        last = applied[-1]
        by = f" (pull request #{last['pull_request']})" if last.get("pull_request") else ""
        return "reverted", f"reverted by apply run {last.get('run')} at {last.get('time')}{by}"
    if audit.get("commit") and seen.get("commit") and audit.get("commit") != seen.get("commit"):
        return "adopted", f"adopted: the manifests at commit {audit['commit']} declare what is live"
    return "cleared", "live state matches the manifests again (changed back at the vendor)"
