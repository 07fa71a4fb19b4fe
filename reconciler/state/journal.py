"""The write-ahead journal: the authority on every write whose outcome is in doubt.

`Journal` holds the logic and portable SQL; `sqlite.SqliteJournal` (one file per workspace) and
`postgres.PostgresJournal` (shared: it outlives a CI runner) say how to connect. Every row carries its
workspace key, so one PostgreSQL database serves many workspaces without them seeing each other's writes.

Every submission is written down *before* it is sent and again when its answer comes back, each entry its
own commit. An intent (a batch submitting, its id, a ticket sending) waits for the disk before the request
leaves; an outcome rides with the next durable commit, and lost in a power cut it leaves its intent open
for the next run to resolve from live state. Nothing is sent again while an earlier send is unresolved.

Orion batches (one row each):

    submitting ──► submitted ──► ended            the normal path; `submitted` carries the batch id
        │              └──────► timed-out        id known, not ended when the poll timeout passed
        ├──► refused                              the server surely did not act
        └──► in-doubt ──► resolved                no id: the answer was lost; resolved by evidence
                                                  (BatchProcessing list, edits after it, poll timeout)
                                                  or by an operator (`reconciler journal resolve`)

Open (still tracked, its registrations kept out of plans): submitting, submitted, in-doubt, timed-out.

SEI tickets (an event log per tradeTicketId; the last event decides):

    sending ──► sent                 stored (answer read)
       ├──────► refused              not stored: may be sent again
       ├──────► exists ──► confirmed / conflict       409, read back
       └──────► in-doubt ──► confirmed / conflict / absent-settled / (still in-doubt)

A ticket may be POSTed only when it has no events, or its last is `refused`, `absent-settled` (read-backs
over a whole settle window all showed it absent) or an operator's `resolved-absent`. Files are 0600.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import socket
import threading
import time
from dataclasses import dataclass

__all__ = [
    "BatchEntry",
    "InDoubt",
    "Journal",
    "TicketEntry",
    "BatchState",
    "TicketEvent",
    "journal_ddl",
    "SCHEMA_VERSION",
]

SCHEMA_VERSION = 3  # 3: the history (state/history.py)


def journal_ddl(prefix: str, serial: str, real: str, bigint: str) -> list[str]:
    """The journal's tables for one SQL dialect: `prefix` is a schema ("reconciler.") or ""."""
    return [
        f"CREATE TABLE IF NOT EXISTS {prefix}meta (key TEXT PRIMARY KEY, value TEXT)",
        f"CREATE TABLE IF NOT EXISTS {prefix}runs (id {serial}, workspace TEXT NOT NULL, plan_id TEXT, started TEXT, "
        "finished TEXT, status TEXT, pid INTEGER, host TEXT, detail TEXT)",
        f"CREATE TABLE IF NOT EXISTS {prefix}batches (local_id TEXT PRIMARY KEY, workspace TEXT NOT NULL, "
        f"run_id {bigint}, addresses TEXT, registration_ids TEXT, state TEXT, batch_id {bigint}, submitted_at TEXT, "
        f"submitted_epoch {real}, updated_at TEXT, detail TEXT)",
        f"CREATE INDEX IF NOT EXISTS batches_by_workspace ON {prefix}batches(workspace, state)",
        f"CREATE TABLE IF NOT EXISTS {prefix}tickets (id {serial}, workspace TEXT NOT NULL, run_id {bigint}, "
        f"ticket_id {bigint}, address TEXT, event TEXT, at TEXT, at_epoch {real}, detail TEXT)",
        f"CREATE INDEX IF NOT EXISTS tickets_by_id ON {prefix}tickets(workspace, ticket_id)",
        f"CREATE TABLE IF NOT EXISTS {prefix}resolutions (id {serial}, workspace TEXT NOT NULL, kind TEXT, key TEXT, "
        "outcome TEXT, reason TEXT, who TEXT, at TEXT)",
    ]


class BatchState(enum.StrEnum):
    """A batch's state in the journal (the diagram above). Stored as its text."""

    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    IN_DOUBT = "in-doubt"
    TIMED_OUT = "timed-out"
    ENDED = "ended"
    REFUSED = "refused"
    RESOLVED = "resolved"
    # still tracked: its registrations are kept out of every plan
    OPEN = enum.nonmember(frozenset({"submitting", "submitted", "in-doubt", "timed-out"}))


class TicketEvent(enum.StrEnum):
    """One event in a ticket's log (the diagram above); the last one decides. Stored as its text."""

    SENDING = "sending"
    SENT = "sent"
    REFUSED = "refused"
    EXISTS = "exists"
    IN_DOUBT = "in-doubt"
    CONFIRMED = "confirmed"
    CONFLICT = "conflict"
    ABSENT_SETTLED = "absent-settled"
    RESOLVED_ABSENT = "resolved-absent"
    RESOLVED_APPLIED = "resolved-applied"
    OPEN = enum.nonmember(frozenset({"sending", "in-doubt", "exists"}))  # outcome in doubt
    SENDABLE = enum.nonmember(frozenset({"refused", "absent-settled", "resolved-absent"}))  # may be POSTed
    STORED = enum.nonmember(frozenset({"sent", "confirmed", "conflict", "resolved-applied"}))  # final at SEI


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class BatchEntry:
    local_id: str
    run_id: int
    addresses: tuple[str, ...]
    registration_ids: tuple[int, ...]
    state: str
    batch_id: int | None
    submitted_at: str
    submitted_epoch: float
    detail: str | None


@dataclass(frozen=True)
class TicketEntry:
    ticket_id: int
    address: str
    event: str  # the last event
    last_send_at: str
    last_send_epoch: float
    detail: str | None


@dataclass(frozen=True)
class InDoubt:
    """One write whose outcome is not known, for `reconciler journal` and for plans."""

    kind: str  # "batch" | "ticket"
    key: str  # local batch id, or the tradeTicketId
    addresses: tuple[str, ...]
    state: str
    since: str
    detail: str | None


class Journal:
    """The journal's logic over portable SQL (`?` placeholders); subclasses connect and run it."""

    prefix = ""  # table prefix, e.g. "reconciler." for a PostgreSQL schema

    def __init__(self, workspace: str):
        self.workspace = workspace
        self._lock = threading.Lock()
        self.commits, self.commit_seconds = 0, 0.0
        self._durability = True  # what the connection does now (each backend starts durable)

    def _execute(self, sql: str, args: tuple, fetch: bool) -> list[tuple]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _t(self, sql: str) -> str:
        return sql.replace("{p}", self.prefix)

    def _durable(self, durable: bool) -> None:
        """Make the following commits wait for the disk (True) or not (False); each backend says how."""

    def _write(self, sql: str, args: tuple, *, durable: bool = True) -> list[tuple]:
        """One commit. `durable=False`, for outcomes only, rides with the next durable commit (see above)."""
        with self._lock:
            started = time.perf_counter()
            try:
                if durable is not self._durability:
                    self._durable(durable)
                    self._durability = durable
                return self._execute(self._t(sql), args, "RETURNING" in sql)
            finally:
                self.commits += 1  # RECONCILER_STATS shows what the journal costs a run
                self.commit_seconds += time.perf_counter() - started

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._execute(self._t(sql), args, True)

    def begin_run(self, plan_id: str) -> int:
        return self._write(
            "INSERT INTO {p}runs(workspace, plan_id, started, status, pid, host) VALUES (?,?,?,?,?,?) RETURNING id",
            (self.workspace, plan_id, _now(), "running", os.getpid(), socket.gethostname()),
        )[0][0]

    def finish_run(self, run_id: int, status: str, detail: str | None = None) -> None:
        self._write("UPDATE {p}runs SET finished=?, status=?, detail=? WHERE id=?", (_now(), status, detail, run_id))

    def runs(self) -> list[tuple]:
        return self._read(
            "SELECT id, plan_id, started, finished, status, detail FROM {p}runs WHERE workspace=? ORDER BY id",
            (self.workspace,),
        )

    # --- Orion batches ------------------------------------------------------------------------------

    def batch_submitting(
        self, run_id: int, local_id: str, addresses: tuple[str, ...], registration_ids: list[int]
    ) -> None:
        self._write(
            "INSERT INTO {p}batches(local_id, workspace, run_id, addresses, registration_ids, state, "
            "submitted_at, submitted_epoch, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                local_id,
                self.workspace,
                run_id,
                json.dumps(list(addresses)),
                json.dumps(list(registration_ids)),
                BatchState.SUBMITTING,
                _now(),
                time.time(),
                _now(),
            ),
        )

    def batch_state(self, local_id: str, state: str, *, batch_id: int | None = None, detail: str | None = None) -> None:
        # a batch id (`submitted`) and every open state are durable; how a batch ended is an outcome
        durable = state in BatchState.OPEN
        if batch_id is not None:
            self._write(
                "UPDATE {p}batches SET state=?, batch_id=?, updated_at=?, detail=? WHERE local_id=?",
                (state, batch_id, _now(), detail, local_id),
                durable=durable,
            )
        else:
            self._write(
                "UPDATE {p}batches SET state=?, updated_at=?, detail=? WHERE local_id=?",
                (state, _now(), detail, local_id),
                durable=durable,
            )

    def open_batches(self) -> list[BatchEntry]:
        """Batches whose end was never seen: tracked, never resubmitted; their registrations kept out."""
        marks = ",".join("?" * len(BatchState.OPEN))
        return self._batches(f"state IN ({marks})", tuple(sorted(BatchState.OPEN)))

    def run_writes(self, run_id: int) -> tuple[list[BatchEntry], list[tuple]]:
        """What one run sent: its batches, and each of its tickets' last (ticket, address, event, detail)."""
        sql = "SELECT ticket_id, address, event, detail FROM {p}tickets WHERE workspace=? AND run_id=? ORDER BY id"
        rows = self._read(sql, (self.workspace, run_id))
        return self._batches("run_id = ?", (run_id,)), list({r[0]: tuple(r) for r in rows}.values())

    def batch(self, local_id: str) -> BatchEntry | None:
        found = self._batches("local_id = ?", (local_id,))
        return found[0] if found else None

    def known_batch_ids(self) -> set[int]:
        return {
            r[0]
            for r in self._read(
                "SELECT batch_id FROM {p}batches WHERE workspace=? AND batch_id IS NOT NULL", (self.workspace,)
            )
        }

    def _batches(self, where: str, args: tuple) -> list[BatchEntry]:
        rows = self._read(
            "SELECT local_id, run_id, addresses, registration_ids, state, batch_id, submitted_at, "
            f"submitted_epoch, detail FROM {{p}}batches WHERE workspace=? AND {where} "
            "ORDER BY submitted_epoch, local_id",
            (self.workspace, *args),
        )
        return [
            BatchEntry(
                r[0],
                r[1],
                tuple(json.loads(r[2])),
                tuple(json.loads(r[3])),
                r[4],
                r[5],
                r[6] or "",
                float(r[7] or 0),
                r[8],
            )
            for r in rows
        ]

    # --- SEI tickets --------------------------------------------------------------------------------

    def ticket_event(self, run_id: int, ticket_id: int, address: str, event: str, detail: str | None = None) -> None:
        self._write(
            "INSERT INTO {p}tickets(workspace, run_id, ticket_id, address, event, at, at_epoch, detail) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (self.workspace, run_id, ticket_id, address, event, _now(), time.time(), detail),
            # `sending` is on disk before the POST leaves. An outcome lost in a power cut leaves `sending`
            # last: in doubt, read back by the next run, never sent blindly (the safe direction)
            durable=event == TicketEvent.SENDING,
        )

    def ticket_history(self, ticket_id: int) -> list[tuple[str, str | None]]:
        return [
            (r[0], r[1])
            for r in self._read(
                "SELECT event, detail FROM {p}tickets WHERE workspace=? AND ticket_id=? ORDER BY id",
                (self.workspace, ticket_id),
            )
        ]

    def ticket(self, ticket_id: int) -> TicketEntry | None:
        found = self._tickets("AND t.ticket_id = ?", (ticket_id,))
        return found[0] if found else None

    def open_tickets(self) -> list[TicketEntry]:
        return [t for t in self._tickets("", ()) if t.event in TicketEvent.OPEN]

    def _tickets(self, where: str, args: tuple) -> list[TicketEntry]:
        same = "s.workspace = t.workspace AND s.ticket_id = t.ticket_id"
        rows = self._read(
            "SELECT t.ticket_id, t.address, t.event, t.detail, "
            f"(SELECT at FROM {{p}}tickets s WHERE {same} AND s.event = 'sending' ORDER BY id DESC LIMIT 1), "
            f"(SELECT at_epoch FROM {{p}}tickets s WHERE {same} AND s.event = 'sending' ORDER BY id DESC LIMIT 1) "
            f"FROM {{p}}tickets t WHERE t.workspace = ? AND t.id = (SELECT MAX(id) FROM {{p}}tickets s WHERE {same}) "
            f"{where} ORDER BY t.ticket_id",
            (self.workspace, *args),
        )
        return [TicketEntry(r[0], r[1], r[2], r[4] or "", float(r[5] or 0), r[3]) for r in rows]

    def why_not_send(self, ticket_id: int) -> str | None:
        """None if the journal allows a POST of this ticket now; else why not (the guard of every send)."""
        t = self.ticket(ticket_id)
        if t is None or t.event in TicketEvent.SENDABLE:
            return None
        if t.event in TicketEvent.OPEN:
            return (
                f"the journal holds an earlier send of ticket {ticket_id} (at {t.last_send_at}) whose outcome "
                "is in doubt; it is read back, never sent again blindly"
            )
        return f"the journal records ticket {ticket_id} as {t.event} at SEI; it is never sent twice"

    @staticmethod
    def ticket_entry(ticket_id: int) -> str:
        return f"ticket:{ticket_id}"

    def standing(self, entries: list[str]) -> dict[str, str]:
        """How claims' entries (a batch's local id, "ticket:<id>") stand: "open" (the write may be in flight),
        "stored" (SEI has the ticket), or absent (settled, never journaled); tickets read 500 at a time."""
        out: dict[str, str] = {}
        ids = [int(e.split(":", 1)[1]) for e in entries if e.startswith("ticket:")]
        for k in range(0, len(ids), 500):
            chunk = ids[k : k + 500]
            for t in self._tickets(f"AND t.ticket_id IN ({','.join('?' * len(chunk))})", tuple(chunk)):
                kind = "open" if t.event in TicketEvent.OPEN else "stored" if t.event in TicketEvent.STORED else None
                if kind:
                    out[self.ticket_entry(t.ticket_id)] = kind
        for e in entries:
            if not e.startswith("ticket:") and (b := self.batch(e)) is not None and b.state in BatchState.OPEN:
                out[e] = "open"
        return out

    def in_doubt(self) -> list[InDoubt]:
        out = [
            InDoubt(
                "batch",
                b.local_id,
                b.addresses,
                b.state,
                b.submitted_at,
                (f"batch {b.batch_id}; " if b.batch_id else "") + (b.detail or ""),
            )
            for b in self.open_batches()
        ]
        out += [
            InDoubt("ticket", str(t.ticket_id), (t.address,), t.event, t.last_send_at, t.detail)
            for t in self.open_tickets()
        ]
        return out

    def resolve(self, kind: str, key: str, outcome: str, reason: str, who: str) -> None:
        """An operator's decision on one in-doubt write, recorded with who, when and why."""
        self._write(
            "INSERT INTO {p}resolutions(workspace, kind, key, outcome, reason, who, at) VALUES (?,?,?,?,?,?,?)",
            (self.workspace, kind, key, outcome, reason, who, _now()),
        )
        detail = f"resolved by {who}: {outcome}: {reason}"
        if kind == "batch":
            self.batch_state(key, BatchState.RESOLVED, detail=detail)
        else:
            t = self.ticket(int(key))
            event = TicketEvent.RESOLVED_ABSENT if outcome == "absent" else TicketEvent.RESOLVED_APPLIED
            self.ticket_event(0, int(key), t.address if t else "", event, detail)

    def record_override(self, policy: str, reason: str, who: str) -> None:
        """A soft policy applied over, with who, when and why (kept with the resolutions)."""
        self._write(
            "INSERT INTO {p}resolutions(workspace, kind, key, outcome, reason, who, at) VALUES (?,?,?,?,?,?,?)",
            (self.workspace, "policy-override", policy, "override", reason, who, _now()),
        )

    def resolutions(self) -> list[tuple]:
        return self._read(
            "SELECT kind, key, outcome, reason, who, at FROM {p}resolutions WHERE workspace=? ORDER BY id",
            (self.workspace,),
        )
