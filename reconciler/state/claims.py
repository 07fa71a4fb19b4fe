"""Claims: a registration or a ticket in flight belongs to one workspace at a time, across workspaces.

The workspace lock stops two applies of the *same* manifests. It cannot see a second tree that
declares the same registration (another repository, another CI job, a laptop), and `validate` cannot
either: each tree is valid on its own. A claim can. Before a batch is POSTed, each of its
registrations is claimed for the vendor endpoint; before a ticket is POSTed, its tradeTicketId is.
A resource another workspace holds is not sent: apply reports it `skipped`, naming the holder.

A claim lives exactly as long as the write it guards may still be in flight:

- its holder's journal still lists that batch or ticket as open (sent, not ended or settled). That
  survives the holder's death: a killed apply's batch may still be processing, and only its rerun,
  which resolves the batch from Orion, ends the claim; or
- its holder still holds its workspace lock (it may have claimed and not journaled yet).

Otherwise the claim is stale and the next claimant takes it over. Holders release their claims as
soon as a batch ends or a ticket settles, so a long run does not hold what it has finished. A ticket
SEI stored is the exception: a submitted ticket can never change, so its claim stands for good, and a
second workspace whose plan still shows it missing (made before the first sent it) is refused instead
of POSTing it again. Its holder's journal says so from the moment SEI accepts it; the claim becomes a
permanent record (`stored:`) when the run settles its claims at its end (or its rerun does, if it was
killed), one transaction for the whole wave instead of one per ticket.

`Claims` holds the logic over portable SQL; `SqliteClaims` keeps claims in one SQLite file in the
user's state folder (shared by every workspace of this OS account on this machine), and
`postgres.PostgresClaims` in the shared database, where every runner sees them. Claims are per
backend: every apply against one endpoint set must use the same one (README, "One apply per workspace").
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from reconciler.errors import StateBackendError
from reconciler.state.local_db import Execute, immediate, open_private

if TYPE_CHECKING:
    from reconciler.state.journal import Journal

__all__ = ["STORED", "Claims", "Execute", "Held", "Holder", "SqliteClaims", "claims_ddl"]

# runs one SQL statement (`?` placeholders) inside a claim's transaction; returns its rows
T = TypeVar("T")

STORED = "stored:"  # the entry of a ticket SEI stored: never released


def claims_ddl(prefix: str) -> list[str]:
    """One row per claimed resource per vendor endpoint; `entry` is the holder's journal entry. Releases
    and settlements go by (workspace, entry): indexed, since stored tickets' rows stay for good (without
    it each release scanned them all, and 2,000 tickets spent 5 s in the claims file)."""
    return [
        f"CREATE TABLE IF NOT EXISTS {prefix}claims (endpoint TEXT NOT NULL, kind TEXT NOT NULL, resource TEXT "
        "NOT NULL, workspace TEXT NOT NULL, entry TEXT NOT NULL, holder TEXT NOT NULL, at TEXT NOT NULL, "
        "PRIMARY KEY (endpoint, kind, resource))",
        f"CREATE INDEX IF NOT EXISTS claims_by_entry ON {prefix}claims (workspace, entry)",
    ]


@dataclass(frozen=True)
class Holder:
    """Who holds a claim: enough to find the apply and to judge whether its write may still be in flight."""

    workspace: str  # whose journal: the workspace key (shared backend) or its state folder (local)
    label: str
    host: str
    pid: int
    run: int | None
    state: str  # the holder's state folder (local backend), or "" (shared)
    since: str

    def describe(self) -> str:
        run = f", run {self.run}" if self.run is not None else ""
        return f"workspace {self.label} (host {self.host}, pid {self.pid}{run}, since {self.since})"


@dataclass(frozen=True)
class Held:
    """A resource another workspace holds: by whom, and for which write of theirs."""

    holder: Holder
    entry: str

    def why(self, kind: str, resource: str) -> str:
        """Why we may not send `resource`: for the item's message."""
        if self.entry.startswith(STORED):
            return (
                f"{kind} {resource} was already sent to SEI by {self.holder.describe()}; a ticket is never sent twice"
            )
        if kind == "ticket":  # its holder's journal says in flight, or stored and the run not yet settled
            return f"{kind} {resource} is sent or being sent by {self.holder.describe()}; rerun once it has settled"
        return f"{kind} {resource} is in flight from {self.holder.describe()}; rerun once that write has ended"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Claims:
    """Claim logic over portable SQL (`?` placeholders); subclasses connect and judge liveness."""

    prefix = ""

    def __init__(self, workspace: str, label: str, state: str = ""):
        self.workspace, self.label, self.state = workspace, label, state
        self.run: int | None = None
        self._lock = threading.Lock()

    # --- what a backend provides --------------------------------------------------------------------

    def _transaction(self, work: Callable[[Execute], T]) -> T:
        """Run `work(execute)` in one serialised transaction; `execute(sql, args) -> rows`."""
        raise NotImplementedError

    def _alive(self, execute: Execute, holder: Holder, entry: str) -> bool:
        """Whether `holder`'s claim for `entry` stands: its lock is held, or its journal says the write may
        be in flight or SEI stored it (`Journal.standing`)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    # --- the logic ------------------------------------------------------------------------------------

    def holder(self) -> Holder:
        return Holder(self.workspace, self.label, socket.gethostname(), os.getpid(), self.run, self.state, _now())

    def claim(self, endpoint: str, kind: str, entry: str, resources: Sequence[str]) -> dict[str, Held]:
        """Claim `resources` for the write `entry`. Returns those another workspace holds (not claimed);
        the rest are ours until `release(entry)` or until our journal closes the entry."""
        return self.claim_each(endpoint, kind, [(entry, r) for r in resources])

    def claim_each(self, endpoint: str, kind: str, pairs: Sequence[tuple[str, str]]) -> dict[str, Held]:
        """`claim` for (entry, resource) pairs, each its own write, in one transaction (a wave's tickets)."""
        mine = json.dumps(asdict(self.holder()))
        p = self.prefix

        def work(execute: Execute) -> dict[str, Held]:
            held: dict[str, Held] = {}
            for entry, resource in pairs:
                rows = execute(
                    f"SELECT workspace, entry, holder FROM {p}claims WHERE endpoint=? AND kind=? AND resource=?",
                    (endpoint, kind, resource),
                )
                if rows and rows[0][0] != self.workspace:
                    other = Holder(**json.loads(rows[0][2]))
                    if rows[0][1].startswith(STORED) or self._alive(execute, other, rows[0][1]):
                        held[resource] = Held(other, rows[0][1])
                        continue
                execute(f"DELETE FROM {p}claims WHERE endpoint=? AND kind=? AND resource=?", (endpoint, kind, resource))
                execute(
                    f"INSERT INTO {p}claims VALUES (?,?,?,?,?,?,?)",
                    (endpoint, kind, resource, self.workspace, entry, mine, _now()),
                )
            return held

        with self._lock:
            return self._transaction(work)

    def release(self, entry: str) -> None:
        """The write `entry` ended or settled: others may send its resources again."""
        with self._lock:
            self._transaction(
                lambda execute: execute(
                    f"DELETE FROM {self.prefix}claims WHERE workspace=? AND entry=?", (self.workspace, entry)
                )
            )

    def settle(self, journal: Journal) -> None:
        """After recovery and at the end of a run: each of this workspace's claims follows its journal
        entry: kept while open, kept for good once SEI stored the ticket, otherwise released."""

        def work(execute: Execute) -> None:
            rows = execute(f"SELECT DISTINCT entry FROM {self.prefix}claims WHERE workspace=?", (self.workspace,))
            entries = [e for (e,) in rows if not e.startswith(STORED)]
            standing = journal.standing(entries)
            for entry in entries:
                if standing.get(entry) == "open":
                    continue
                if standing.get(entry) == "stored":
                    execute(
                        f"UPDATE {self.prefix}claims SET entry=? WHERE workspace=? AND entry=?",
                        (STORED + entry, self.workspace, entry),
                    )
                else:
                    execute(f"DELETE FROM {self.prefix}claims WHERE workspace=? AND entry=?", (self.workspace, entry))

        with self._lock:
            self._transaction(work)


class SqliteClaims(Claims):
    """Claims on this machine: one SQLite file every workspace of this OS account opens (0600 in 0700).

    A folder every account could write would let any local user clear another's claims; across
    accounts and machines the shared PostgreSQL backend is the guard."""

    def __init__(self, path: Path, label: str, state: str):
        # Locally a journal is a file, and two checkouts of one repository share a workspace key but not
        # a journal: the owner of a claim is the state folder, so each checkout's claims are its own.
        super().__init__(state, label, state)
        self.path = path
        try:
            self._db = open_private(path)
            for ddl in claims_ddl(""):
                self._db.execute(ddl)
        except (OSError, sqlite3.Error) as e:
            raise StateBackendError(
                f"the claims file {path} cannot be opened ({e}); nothing was sent. It only "
                "records writes in flight: check that no apply is running, then move it aside "
                "(RECONCILER_CLAIMS_DIR names another folder)"
            ) from e

    def _transaction(self, work: Callable[[Execute], T]) -> T:
        try:
            return immediate(self._db, work)  # one claimant at a time, machine-wide
        except sqlite3.Error as e:
            raise StateBackendError(f"the claims file {self.path} failed: {e}") from e

    def _alive(self, execute: Execute, holder: Holder, entry: str) -> bool:
        from reconciler.state.lock import flock_held
        from reconciler.state.sqlite import SqliteJournal

        state = Path(holder.state)
        if flock_held(state / "lock"):
            return True
        try:
            journal = SqliteJournal.open_readonly(state / "journal.db") if holder.state else None
            if journal is None:
                return False  # the holder's journal is gone, and its lock with it
            try:
                return entry in journal.standing([entry])
            finally:
                journal.close()
        except StateBackendError:
            return True  # a journal we cannot read may hold the write open: never take it over blindly

    def close(self) -> None:
        with self._lock:
            self._db.close()
