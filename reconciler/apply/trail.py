"""One apply's change records for the audit trail (state/history.py): one per item the run handled.

An auditor samples changes and asks, for each: who made it, who approved it, when, what exactly
changed, under which policies, and what the vendor answered. Every record of a run carries the same
run facts (run id, operator, CI run, commit, pull request and approvers, plan digest, policies and
overrides) and its item's own: address, action, fields before → after, vendor references, outcome.

A run under a soft-policy override, or with any policy not passed, is an emergency change: its
records say so (`emergency: true`), for the after-the-fact review `history --emergency` lists.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.apply.outcomes import ApplyResult, ItemResult
from reconciler.config.environment import RunFacts
from reconciler.model import Change
from reconciler.state.history import History, HistoryFilter, record_time
from reconciler.state.journal import Journal, TicketEvent

__all__ = ["RunFactsForTrail", "change_records", "stopped_runs"]


@dataclass(frozen=True)
class RunFactsForTrail:
    """What every change record of one run shares."""

    run: int
    plan_digest: str
    facts: RunFacts
    commit: str | None
    environment: str | None
    policy_results: Sequence[dict[str, Any]] = ()
    overrides: Sequence[dict[str, Any]] = ()
    approvers: Sequence[dict[str, Any]] = field(default_factory=tuple)

    @property
    def emergency(self) -> bool:
        return bool(self.overrides) or any(not r.get("passed", True) for r in self.policy_results)

    def operator(self) -> dict[str, Any]:
        f = self.facts
        return {"name": f.operator, "os_user": f.os_user, "ci_actor": f.ci_actor, "ci_run_url": f.run_url}


def _vendor(reference: str | None) -> dict[str, Any]:
    """The vendor's references from an item's: "batch 26140410, correlationId c-1" → batch_id and
    correlation_id; "ticket 10000002" → ticket_id. Anything else is kept as it was written."""
    found: dict[str, Any] = {}
    for part in (reference or "").split(", "):
        kind, _, value = part.partition(" ")
        key = {"batch": "batch_id", "ticket": "ticket_id", "correlationId": "correlation_id"}.get(kind)
        if key and value:
            found[key] = int(value) if value.isdigit() else value
        elif part:
            found.setdefault("reference", reference)
    return found


def change_records(
    result: ApplyResult, changes: Mapping[str, Change], run: RunFactsForTrail, now: dt.datetime | None = None
) -> Iterator[dict[str, Any]]:
    """The run's records, in the order its items were listed; `time` is when the run recorded them (UTC).
    A generator: 100,000 items are appended in chunks, never held as records all at once."""
    time = record_time(now)
    for item in result.items:
        yield _record(item, changes.get(item.address), run, time)


def _record(item: ItemResult, change: Change | None, run: RunFactsForTrail, time: str) -> dict[str, Any]:
    return {
        "kind": "change",
        "time": time,
        "run": run.run,
        "operator": run.operator(),
        "commit": run.commit,
        "pull_request": run.facts.pull_request,
        "approvers": list(run.approvers),
        "plan_digest": run.plan_digest,
        "environment": run.environment,
        "address": item.address,
        "action": item.action,
        "source": {"file": item.source.file, "line": item.source.line},
        "fields": [{"path": f.path, "before": f.before, "after": f.after} for f in (change.fields if change else ())],
        "policy": {"results": list(run.policy_results), "overrides": list(run.overrides)},
        "emergency": run.emergency,
        "vendor": _vendor(item.reference),
        "outcome": item.status.value,
        "message": item.message,
    }


def stopped_runs(
    journal: Journal, history: History, run: RunFactsForTrail
) -> Iterator[tuple[int, Iterator[dict[str, Any]]]]:
    """(run id, its records) for each earlier run that sent and never recorded (killed before its end:
    its journal run is still `running`), from the journal, so no handled item is missing from the
    history. Outcomes are what the journal shows: a ticket SEI stored is applied, a refused one failed,
    everything else unknown (this run's recovery and plan show what is live; its own records say what it
    did). The caller marks the run stopped once its records are written."""
    for row in journal.runs():
        stopped, status = int(row[0]), row[4]
        if stopped != run.run and status == "running":
            if not history.records(HistoryFilter(kind="change", run=stopped)):
                yield stopped, _stopped_records(journal, run, stopped, row[2], row[1])


def _stopped_records(
    journal: Journal, run: RunFactsForTrail, stopped: int, started: str, plan_digest: str | None
) -> Iterator[dict[str, Any]]:
    batches, tickets = journal.run_writes(stopped)
    why = f"run {stopped} (started {started}) stopped before it recorded its outcome; the journal shows "
    base = _record_base(run, stopped, plan_digest)
    for b in batches:
        where = f"batch {b.local_id} {b.state}" + (f" (Orion batch {b.batch_id})" if b.batch_id else "")
        vendor = {"batch_id": b.batch_id} if b.batch_id else {}
        for address in b.addresses:
            yield {**base, "address": address, "action": "update", "vendor": vendor, "outcome": "unknown",
                   "message": why + where}  # fmt: skip
    for tid, address, event, detail in tickets:
        outcome = "applied" if event in TicketEvent.STORED else "failed" if event == "refused" else "unknown"
        yield {**base, "address": address, "action": "create", "vendor": {"ticket_id": tid}, "outcome": outcome,
               "message": why + f"ticket {tid} {event}" + (f" ({detail})" if detail else "")}  # fmt: skip


def _record_base(run: RunFactsForTrail, stopped: int, plan_digest: str | None) -> dict[str, Any]:
    return {
        "kind": "change",
        "time": record_time(),
        "run": stopped,
        "recorded_later": True,  # by a later apply, from the journal
        "operator": run.operator(),
        "commit": None,
        "pull_request": None,
        "approvers": [],
        "plan_digest": plan_digest,
        "environment": run.environment,
        "source": None,
        "fields": [],
        "policy": {"results": [], "overrides": []},
        "emergency": False,
    }
