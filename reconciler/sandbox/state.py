"""The sandbox's live state and vendor behaviour, without any HTTP: registrations, batches, tickets.

Batches progress with the clock, not with a background task: every request first calls `advance()`,
which finishes the batches whose time has come (New → Processing → Complete/PartiallyComplete/Failed).
That keeps the emulator deterministic under test and lets many batches "run" at once, as Orion's do.
Business rules, field lists and limits are the emulator's own (contract.py, written from API.md),
applied to the merged result as Orion would; the client's rules are never consulted.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.sandbox.batches import Batch, SandboxTiming, status_view
from reconciler.sandbox.contract import INSTRUCTION_FIELDS, registration_problems, sleeve_model
from reconciler.sandbox.writes import clone, field_changes, merge, now_iso, recompute_totals

__all__ = ["Batch", "SandboxState", "SandboxTiming"]  # Batch and SandboxTiming live in batches.py


class SandboxState:
    """Everything the emulator knows. Thread-safe: one lock around every operation."""

    def __init__(
        self,
        registrations: dict[int, dict] | None = None,
        tickets: list[dict] | None = None,
        histories: dict[int, list] | None = None,
        *,
        timing: SandboxTiming | None = None,
        clock: Callable[[], float] = time.monotonic,
        path: Path | None = None,
    ):
        self.lock = threading.RLock()
        self.registrations: dict[int, dict] = registrations or {}
        self.histories: dict[int, list[dict]] = histories or {}
        self.tickets: list[dict] = tickets or []
        self.batches: dict[int, Batch] = {}
        self.timing = timing or SandboxTiming()
        self.clock = clock
        self.path = path
        self.next_batch_id = 26140410
        self.next_account_id = 1 + max(
            (s.get("accountId") or 0 for r in self.registrations.values() for s in r.get("accountSleeves") or []),
            default=40000,
        )
        self.next_error_id = 1
        # a running number, not a count of every history entry at each write (that made a batch of 100
        # at 2,000 registrations take 0.27 s, and grew with the estate)
        self.next_history_id = 1 + max((e.get("id") or 0 for h in self.histories.values() for e in h), default=0)
        self.counters: dict[str, int] = {}
        self.writes: list[dict] = []
        self.ticket_posts: dict[int, int] = {}  # POSTs that reached SEI per tradeTicketId, 409s included
        self.ticket_post_times: list[float] = []  # self.clock() of every ticket POST that reached SEI
        self._ticket_ids = {int(t["tradeTicketId"]) for t in self.tickets}
        self._rows_of: dict[int, list[dict]] = {}  # tradeTicketId → its rows: a lookup, not a scan per GET
        for t in self.tickets:
            self._rows_of.setdefault(int(t["tradeTicketId"]), []).append(t)
        self._models: set | None = None  # known_models(), kept up to date by writes
        self._models_of: dict | None = None

    # --- persistence --------------------------------------------------------------------------------

    def to_json(self) -> dict:
        with self.lock:
            return {
                "registrations": list(self.registrations.values()),
                "tickets": self.tickets,
                "histories": {str(k): v for k, v in self.histories.items()},
            }

    @classmethod
    def from_json(cls, data: dict, **kw) -> SandboxState:
        regs = {int(r["registrationId"]): r for r in data.get("registrations", [])}
        hist = {int(k): v for k, v in (data.get("histories") or {}).items()}
        return cls(regs, list(data.get("tickets", [])), hist, **kw)

    def replace(self, data: dict) -> None:
        other = SandboxState.from_json(data)
        with self.lock:
            self.registrations, self.tickets, self.histories = other.registrations, other.tickets, other.histories
            self._ticket_ids, self._rows_of = other._ticket_ids, other._rows_of
            self.next_history_id = max(self.next_history_id, other.next_history_id)
            self.next_account_id = max(self.next_account_id, other.next_account_id)
            self.save()

    def save(self) -> None:
        """Keep the state file current, atomically, so a killed sandbox loses at most the last request."""
        if self.path is None:
            return
        data = json.dumps(self.to_json(), indent=1).encode()
        fd, tmp = tempfile.mkstemp(dir=str(self.path.parent), prefix=".sandbox-state.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path)

    # --- bookkeeping --------------------------------------------------------------------------------

    def count(self, key: str) -> None:
        with self.lock:
            self.counters[key] = self.counters.get(key, 0) + 1

    def log_write(self, api: str, method: str, path: str, **detail: Any) -> None:
        with self.lock:
            self.writes.append({"api": api, "method": method, "path": path, "at": now_iso(), **detail})

    # --- Orion --------------------------------------------------------------------------------------

    def summaries(self) -> list[dict]:
        with self.lock:
            return [
                {
                    k: r.get(k)
                    for k in (
                        "registrationId",
                        "clientId",
                        "custodialAccountNumber",
                        "isActive",
                        "editedBy",
                        "editedDate",
                    )
                }
                for r in self.registrations.values()
            ]

    def get(self, registration_id: int) -> dict | None:
        with self.lock:
            r = self.registrations.get(registration_id)
            return clone(r) if r else None

    def list_with_sleeves(self, ids: list[int]) -> list[dict]:
        with self.lock:
            out = []
            for i in ids:
                r = self.registrations.get(i)
                if r is not None:
                    problems = registration_problems(r)
                    out.append({**r, "isValid": not problems, "validationMessage": "; ".join(problems) or None})
            return out

    def known_models(self) -> set:
        """The models Orion knows: the demo's catalogue and every model a live sleeve holds. Worked out once
        and kept up to date by every write (scanning every registration per item made a batch's cost grow
        with the estate: 0.27 s at 2,000 registrations, minutes at 100,000)."""
        from reconciler.sandbox.demo import MODELS

        with self.lock:
            if self._models is None or self._models_of is not self.registrations:
                self._models = set(MODELS) | {
                    m
                    for r in self.registrations.values()
                    for s in r.get("accountSleeves") or []
                    if (m := sleeve_model(s)) is not None
                }
                self._models_of = self.registrations
            return self._models

    def _unknown_models(self, reg: dict) -> list[str]:
        known = self.known_models()
        return [
            f"model {sleeve_model(s)} does not exist"
            for s in reg.get("accountSleeves") or []
            if s.get("sleeveType") == "Normal sleeve" and sleeve_model(s) not in known
        ]

    def validate(self, registration: dict) -> dict:
        with self.lock:
            live = self.registrations.get(int(registration.get("registrationId") or 0))
            if live is None:
                return {"isValid": False, "validationMessage": "registration does not exist"}
            merged, problems = merge(clone(live), registration, lambda: 0)
            problems += self._unknown_models(merged)
            problems += registration_problems(merged)
            return {"isValid": not problems, "validationMessage": "; ".join(problems) or None}

    def submit_batch(self, items: list[dict], who: str, stuck: bool = False, rejected: frozenset = frozenset()) -> int:
        """Queue a batch. It takes `items` as they are: the request's own, just decoded, used by nobody else
        (a copy cost 24 ms of the emulator's one thread per 100 registrations)."""
        with self.lock:
            batch_id = self.next_batch_id
            self.next_batch_id += 1
            self.batches[batch_id] = Batch(
                batch_id,
                items,
                self.clock(),
                now_iso(),
                who,
                created_epoch=time.time(),
                stuck=stuck,
                rejected=rejected,
                latency=self.timing.draw(),
            )
            self.log_write(
                "orion",
                "POST",
                "/api/v1/Trading/Sleeve/Registrations/Action/process/batch",
                batchId=batch_id,
                registrationIds=[i.get("registrationId") for i in items],
            )
            return batch_id

    def release_stuck(self, after: float = 0.0) -> int:
        """Stuck batches queue again (New) for `after` seconds, then take the usual latency."""
        with self.lock:
            stuck = [b for b in self.batches.values() if b.stuck and not b.finished]
            for b in stuck:
                b.stuck, b.created = False, self.clock() + after
            return len(stuck)

    def advance(self) -> None:
        """Finish every batch whose latency has passed. Called before each request is served."""
        with self.lock:
            now = self.clock()
            changed = False
            for b in self.batches.values():
                if b.finished or b.stuck:
                    continue
                if now - b.created >= b.latency:
                    self._finish(b)
                    changed = True
            if changed:
                self.save()

    def batch_status(self, batch_id: int) -> dict | None:
        with self.lock:
            b = self.batches.get(batch_id)
            return None if b is None else status_view(b, self.clock(), self.timing)

    def list_batches(self, start: float | None, end: float | None, status: str | None) -> list[dict]:
        """Batches created in [start, end] (epoch seconds, inclusive), as status objects."""
        with self.lock:
            ids = [
                b.id
                for b in self.batches.values()
                if (start is None or b.created_epoch >= start) and (end is None or b.created_epoch <= end)
            ]
            rows = [status_view(self.batches[i], self.clock(), self.timing) for i in ids]
            return [r for r in rows if status is None or r["status"] == status]

    def batch_errors(self, batch_id: int) -> list[dict] | None:
        with self.lock:
            b = self.batches.get(batch_id)
            return None if b is None else list(b.errors)

    def _finish(self, b: Batch) -> None:
        failed = 0
        for item in b.items:
            rid = int(item.get("registrationId") or 0)
            live = self.registrations.get(rid)
            if live is None:
                self._error(b, rid, "registration does not exist; it cannot be created through this API")
                failed += 1
                continue
            before = live  # never changed: the merged copy replaces it
            merged, problems = merge(clone(live), item, self._new_account_id)
            problems += self._unknown_models(merged)
            problems += registration_problems(merged)
            if rid in b.rejected:
                problems.append("model 36 is closed to new accounts (sandbox fault)")
            if problems:
                self._error(b, rid, "; ".join(problems))
                failed += 1
                continue
            self._warn_if_inactive(b, merged)
            self._store(merged, before, b.created_by, f"batch {b.id}")
        b.finished = True
        b.finished_at = self.clock()
        b.items_completed = len(b.items)
        b.status = "Complete" if failed == 0 else ("Failed" if failed == len(b.items) else "PartiallyComplete")

    def _warn_if_inactive(self, b: Batch, reg: dict) -> None:
        if reg.get("isActive") is False:
            self._error(b, reg["registrationId"], "registration is inactive; sleeves will not trade", "Warning")

    def _error(self, b: Batch, rid: int, message: str, severity: str = "Error") -> None:
        b.errors.append(
            {
                "id": self.next_error_id,
                "batchId": b.id,
                "errorMessage": f"registrationId {rid}: {message}",
                "details": None,
                "severityCode": {"Error": 3, "Warning": 2}.get(severity, 1),
                "severity": severity,
                "createdBy": "sandbox",
                "createdDate": now_iso(),
            }
        )
        self.next_error_id += 1

    def _history_id(self) -> int:
        self.next_history_id += 1
        return self.next_history_id - 1

    def _new_account_id(self) -> int:
        self.next_account_id += 1
        return self.next_account_id - 1

    def _store(self, reg: dict, before: dict, who: str, how: str) -> None:
        now = now_iso()
        reg["editedBy"], reg["editedDate"] = who, now
        recompute_totals(reg)
        self.registrations[reg["registrationId"]] = reg
        if self._models is not None:
            self._models.update(m for s in reg.get("accountSleeves") or [] if (m := sleeve_model(s)) is not None)
        changes = field_changes(before, reg)
        self.histories.setdefault(reg["registrationId"], []).insert(
            0,
            {
                "id": self._history_id(),
                "registrationId": reg["registrationId"],
                "changeType": "Update",
                "editedBy": who,
                "editedDate": now,
                "description": how,
                "changes": changes,
            },
        )

    def edit_outside_git(self, registration_id: int, patch: dict, who: str) -> dict | None:
        """An operator's edit in Orion's UI: registration fields and sleeves by accountId."""
        with self.lock:
            live = self.registrations.get(registration_id)
            if live is None:
                return None
            before = clone(live)
            reg = clone(live)
            for k, v in (patch.get("set") or {}).items():
                reg[k] = v
            for aid, fields in (patch.get("sleeves") or {}).items():
                for s in reg["accountSleeves"]:
                    if str(s.get("accountId")) == str(aid):
                        s.update(fields)
            self._store(reg, before, who, "edited in Orion Connect")
            self.save()
            return clone(reg)

    # --- SEI ----------------------------------------------------------------------------------------

    def tickets_page(
        self, ticket_id: int | None, status: str | None, limit: int, cursor: int
    ) -> tuple[list[dict], int, int | None]:
        with self.lock:
            rows = self.tickets if ticket_id is None else self._rows_of.get(ticket_id, [])
            if status is not None:
                rows = [t for t in rows if t.get("status") == status]
            page = rows[cursor : cursor + limit]  # the whole list is never copied to serve one page
            nxt = cursor + limit if cursor + limit < len(rows) else None
            return clone(page), len(rows), nxt

    def add_ticket(self, data: dict) -> dict | None:
        """Store a submitted instruction as one row with orderId null. None if the id exists (409)."""
        with self.lock:
            tid = int(data["tradeTicketId"])
            self.ticket_posts[tid] = self.ticket_posts.get(tid, 0) + 1
            self.ticket_post_times.append(self.clock())
            if tid in self._ticket_ids:
                return None
            now = dt.datetime.now().isoformat(timespec="milliseconds")
            row = {
                **{f: data[f] for f in INSTRUCTION_FIELDS if f in data},
                "batchSize": data.get("batchSize"),
                "orderId": None,
                "omnibus": None,
                "side": str(data["side"]).upper(),
                "quantity": None,
                "rebalancePrice": None,
                "status": "Original",
                "createDate": now,
                "changeDate": now,
            }
            self.tickets.append(row)
            self._ticket_ids.add(tid)
            self._rows_of.setdefault(tid, []).append(row)
            self.log_write("sei", "POST", "/v1/order/tradetickets", tradeTicketId=tid)
            self.save()
            return clone(row)

    def add_rows(self, rows: list[dict]) -> int:
        """Ticket rows as SEI would list them (a test's or a benchmark's setup); the number of rows after."""
        with self.lock:
            for r in rows:
                tid = int(r["tradeTicketId"])
                self.tickets.append(r)
                self._ticket_ids.add(tid)
                self._rows_of.setdefault(tid, []).append(r)
            self.save()
            return len(self.tickets)

    def ticket_count(self, ticket_id: int) -> int:
        with self.lock:
            return len(self._rows_of.get(ticket_id, []))
