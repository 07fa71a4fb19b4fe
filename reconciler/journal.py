"""The write-ahead journal and the workspace lock (embedded default: SQLite under .reconciler/).

Every submission is written down *before* it is sent and again when its answer (a batch id, a ticket
answer, or "unknown") comes back. Each entry is its own committed transaction with synchronous=FULL,
so it is on disk before the request leaves; a process killed at any point leaves a journal that says
exactly which batches may be in flight. A rerun resumes tracking those batches by id and never
resubmits them; tickets whose answer never came are read back from SEI by the re-plan.

One apply at a time per workspace: a lock file names its holder (pid, host, start, command). A lock
whose holder is gone is stale; it is broken only when asked (`--break-lock`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import LockError

__all__ = ["BatchEntry", "Journal", "WorkspaceLock"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, plan_id TEXT, started TEXT, finished TEXT, status TEXT, pid INTEGER, host TEXT);
CREATE TABLE IF NOT EXISTS batches (
  local_id TEXT PRIMARY KEY, run_id INTEGER, addresses TEXT, registration_ids TEXT, state TEXT,
  batch_id INTEGER, submitted_at TEXT, updated_at TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS tickets (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER, ticket_id INTEGER, address TEXT, state TEXT,
  updated_at TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS tickets_by_id ON tickets(ticket_id);
"""

# Batch states. Only SUBMITTED and TIMED_OUT have a batch id whose outcome is still open.
SUBMITTING, SUBMITTED, TIMED_OUT, ENDED, UNKNOWN, REFUSED = "submitting", "submitted", "timed-out", "ended", "unknown", "refused"
OPEN_STATES = (SUBMITTED, TIMED_OUT)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class BatchEntry:
    local_id: str
    run_id: int
    addresses: tuple[str, ...]
    registration_ids: tuple[int, ...]
    state: str
    batch_id: int | None
    detail: str | None


class Journal:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # every commit is fsynced before we go on
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple) -> int:
        with self._lock:
            cur = self._db.execute(sql, args)
            return cur.lastrowid

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- runs ---------------------------------------------------------------------------------------

    def begin_run(self, plan_id: str) -> int:
        return self._write("INSERT INTO runs(plan_id, started, status, pid, host) VALUES (?,?,?,?,?)",
                           (plan_id, _now(), "running", os.getpid(), socket.gethostname()))

    def finish_run(self, run_id: int, status: str) -> None:
        self._write("UPDATE runs SET finished=?, status=? WHERE id=?", (_now(), status, run_id))

    # --- Orion batches ------------------------------------------------------------------------------

    def batch_submitting(self, run_id: int, local_id: str, addresses: tuple[str, ...], registration_ids: list[int]) -> None:
        self._write("INSERT INTO batches(local_id, run_id, addresses, registration_ids, state, updated_at) VALUES (?,?,?,?,?,?)",
                    (local_id, run_id, json.dumps(list(addresses)), json.dumps(registration_ids), SUBMITTING, _now()))

    def batch_state(self, local_id: str, state: str, *, batch_id: int | None = None, detail: str | None = None) -> None:
        if batch_id is not None:
            self._write("UPDATE batches SET state=?, batch_id=?, submitted_at=?, updated_at=?, detail=? WHERE local_id=?",
                        (state, batch_id, _now(), _now(), detail, local_id))
        else:
            self._write("UPDATE batches SET state=?, updated_at=?, detail=? WHERE local_id=?", (state, _now(), detail, local_id))

    def open_batches(self) -> list[BatchEntry]:
        """Batches with a known id whose end was never seen: a rerun tracks these, never resubmits them."""
        return self._batches(f"state IN ({','.join('?' * len(OPEN_STATES))})", OPEN_STATES)

    def unresolved_batches(self) -> list[BatchEntry]:
        """Batches sent without an answer: no id to track; the re-plan reads their registrations' live state."""
        return self._batches("state IN (?, ?)", (SUBMITTING, UNKNOWN))

    def _batches(self, where: str, args: tuple) -> list[BatchEntry]:
        rows = self._read(f"SELECT local_id, run_id, addresses, registration_ids, state, batch_id, detail FROM batches "
                          f"WHERE {where} ORDER BY rowid", args)
        return [BatchEntry(r[0], r[1], tuple(json.loads(r[2])), tuple(json.loads(r[3])), r[4], r[5], r[6]) for r in rows]

    # --- SEI tickets --------------------------------------------------------------------------------

    def ticket(self, run_id: int, ticket_id: int, address: str, state: str, detail: str | None = None) -> None:
        self._write("INSERT INTO tickets(run_id, ticket_id, address, state, updated_at, detail) VALUES (?,?,?,?,?,?)",
                    (run_id, ticket_id, address, state, _now(), detail))

    def ticket_history(self, ticket_id: int) -> list[tuple[str, str | None]]:
        return [(r[0], r[1]) for r in self._read("SELECT state, detail FROM tickets WHERE ticket_id=? ORDER BY id", (ticket_id,))]

    def unresolved_tickets(self) -> list[tuple[int, str]]:
        """Tickets whose last entry is a send without an answer."""
        rows = self._read("SELECT ticket_id, address, state FROM tickets t WHERE id = "
                          "(SELECT MAX(id) FROM tickets WHERE ticket_id = t.ticket_id)")
        return [(r[0], r[1]) for r in rows if r[2] in ("sending", "unknown")]


class WorkspaceLock:
    """An exclusive lock file that names its holder."""

    def __init__(self, path: Path, command: str):
        self.path = path
        self.command = command
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def acquire(self, *, break_lock: bool = False) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if break_lock and self.path.exists():
            self.path.unlink(missing_ok=True)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(), "command": self.command}
        try:
            fd = os.open(str(self.path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            h = self.holder() or {}
            stale = h.get("host") == socket.gethostname() and not _alive(h.get("pid"))
            raise LockError(
                f"the workspace is locked by pid {h.get('pid')} on {h.get('host')} since {h.get('started')} "
                f"({h.get('command', '?')})"
                + ("; that process is no longer running, so the lock is stale: rerun with --break-lock"
                   if stale else "; wait for it to finish (if it is gone, rerun with --break-lock)")) from None
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
            f.flush()
            os.fsync(f.fileno())
        self.held = True

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "WorkspaceLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True
