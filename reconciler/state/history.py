"""The audit trail: one append-only, hash-chained history of records per workspace.

A record is a JSON object. Its `hash` is SHA-256 over its canonical JSON (keys sorted, no spaces,
UTF-8, without `hash` itself), and that JSON includes `previous`: the hash of the record before it
(64 zeros for the first) and `seq`, its place in the chain. Editing a record breaks its own hash;
removing or reordering records breaks the next record's `previous`; so `verify` names the first
record that was altered, removed or reordered. (Removing the *last* records leaves a shorter chain
that is still whole: compare the head hash with one kept elsewhere, as `history export` writes it.)

The columns beside `record` (kind, time, address, run, emergency) exist to filter without parsing
every record; `verify` checks that they agree with the record they index.

Nothing here updates or deletes a record. SQLite (beside the journal) refuses UPDATE and DELETE with
triggers; PostgreSQL does the same with a trigger, and the tool's role holds no UPDATE or DELETE on
the table (README, "Audit trail"). Retention is the firm's: nothing in the tool trims history.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from reconciler.errors import StateBackendError
from reconciler.state.local_db import Execute, immediate, open_private

__all__ = [
    "GENESIS",
    "Chain",
    "History",
    "HistoryFilter",
    "SqliteHistory",
    "append_only_ddl",
    "canonical",
    "history_ddl",
    "record_time",
    "seal",
]

T = TypeVar("T")

GENESIS = "0" * 64  # the `previous` of the first record


def record_time(moment: dt.datetime | None = None) -> str:
    """A moment as records carry it: UTC, to the second, `Z` (text that sorts as time); now by default."""
    return (moment or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes a record's hash covers: its JSON without `hash`, keys sorted, no spaces, UTF-8."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def seal(record: dict[str, Any], seq: int, previous: str) -> dict[str, Any]:
    """`record` as the chain stores it: with its `seq`, the `previous` hash, and its own `hash`."""
    sealed = {**record, "seq": seq, "previous": previous}
    sealed["hash"] = hashlib.sha256(canonical(sealed)).hexdigest()
    return sealed


def history_ddl(prefix: str, workspace_column: bool) -> list[str]:
    """The table. PostgreSQL keeps every workspace in one table (`workspace` in the key)."""
    key = "workspace TEXT NOT NULL, seq BIGINT NOT NULL" if workspace_column else "seq INTEGER NOT NULL"
    primary = "PRIMARY KEY (workspace, seq)" if workspace_column else "PRIMARY KEY (seq)"
    return [
        f"CREATE TABLE IF NOT EXISTS {prefix}history ({key}, kind TEXT NOT NULL, time TEXT NOT NULL, "
        f"address TEXT NOT NULL, run BIGINT, emergency BOOLEAN NOT NULL, record TEXT NOT NULL, hash TEXT NOT NULL, "
        f"{primary})",
        f"CREATE TABLE IF NOT EXISTS {prefix}drift_seen ("
        + ("workspace TEXT NOT NULL, " if workspace_column else "")
        + "address TEXT NOT NULL, last_seen TEXT NOT NULL, PRIMARY KEY ("
        + ("workspace, " if workspace_column else "")
        + "address))",
    ]


def append_only_ddl(schema: str) -> list[str]:
    """PostgreSQL: the history refuses UPDATE, DELETE and TRUNCATE from anyone, owner included (the
    tool's role also lacks the rights: README, "Audit trail"). A superuser can disable the trigger;
    `verify` is the check then."""
    return [
        f"CREATE OR REPLACE FUNCTION {schema}.history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"RAISE EXCEPTION '{schema}.history is append-only: % refused', TG_OP; END $$",
        f"CREATE OR REPLACE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON {schema}.history "
        f"FOR EACH ROW EXECUTE FUNCTION {schema}.history_append_only()",
        f"CREATE OR REPLACE TRIGGER history_no_truncate BEFORE TRUNCATE ON {schema}.history "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {schema}.history_append_only()",
    ]


@dataclass(frozen=True)
class HistoryFilter:
    """What `reconciler history` selects; times are ISO 8601 UTC strings, compared as text."""

    since: str | None = None
    until: str | None = None
    address: str | None = None  # a glob
    kind: str | None = None  # "change" | "drift"
    emergency: bool = False
    run: int | None = None

    def keeps(self, record: dict[str, Any]) -> bool:
        time = str(record.get("time", ""))
        return (
            (self.since is None or time >= self.since)
            and (self.until is None or time < self.until)
            and (self.address is None or fnmatch.fnmatchcase(str(record.get("address", "")), self.address))
            and (self.kind is None or record.get("kind") == self.kind)
            and (not self.emergency or bool(record.get("emergency")))
            and (self.run is None or record.get("run") == self.run)
        )


@dataclass(frozen=True)
class Chain:
    """What `verify` found: intact (`broken` is None), else the first broken record and why."""

    records: int
    head: str
    broken: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken is None

    def as_dict(self) -> dict[str, Any]:
        return {"intact": self.intact, "records": self.records, "head": self.head, "broken": self.broken}


def _name(record: dict[str, Any], seq: Any) -> str:
    return f"record #{seq} ({record.get('time', '?')}, {record.get('kind', '?')} {record.get('address', '?')})"


class History:
    """The chain's logic over portable SQL (`?` placeholders); a backend connects and runs it."""

    prefix = ""
    _key = ""  # "workspace=? AND " where one table holds every workspace (PostgreSQL)

    def __init__(self, workspace: str):
        self.workspace = workspace
        self._lock = threading.Lock()

    # --- what a backend provides ----------------------------------------------------------------

    def _transaction(self, work: Callable[[Execute], T]) -> T:
        """Run `work(execute)` in one serialised transaction."""
        raise NotImplementedError

    def _args(self, *args: Any) -> tuple:
        return args

    def close(self) -> None:
        pass

    # --- writing ----------------------------------------------------------------------------------

    def append(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chain `records` after the head, in one transaction; returns them sealed."""
        if not records:
            return []
        p, key = self.prefix, self._key

        def work(execute: Execute) -> list[dict[str, Any]]:
            head = execute(f"SELECT seq, hash FROM {p}history WHERE {key}1=1 ORDER BY seq DESC LIMIT 1", self._args())
            seq, previous = (int(head[0][0]), head[0][1]) if head else (0, GENESIS)
            sealed = []
            for record in records:
                seq += 1
                s = seal(record, seq, previous)
                previous = s["hash"]
                execute(
                    f"INSERT INTO {p}history VALUES ({'?,' if key else ''}?,?,?,?,?,?,?,?)",
                    self._args(
                        seq,
                        s["kind"],
                        s["time"],
                        s["address"],
                        s.get("run"),
                        bool(s.get("emergency")),
                        json.dumps(s, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
                        s["hash"],
                    ),
                )
                sealed.append(s)
            return sealed

        with self._lock:
            return self._transaction(work)

    def mark_seen(self, addresses: Iterable[str], time: str) -> None:
        """When each open drift finding was last seen (kept beside the chain; its closing record carries it)."""
        p, key = self.prefix, self._key

        def work(execute: Execute) -> None:
            for address in addresses:
                execute(f"DELETE FROM {p}drift_seen WHERE {key}address=?", self._args(address))
                execute(f"INSERT INTO {p}drift_seen VALUES ({'?,' if key else ''}?,?)", self._args(address, time))

        with self._lock:
            self._transaction(work)

    def last_seen(self) -> dict[str, str]:
        p, key = self.prefix, self._key
        with self._lock:
            rows = self._transaction(
                lambda execute: execute(f"SELECT address, last_seen FROM {p}drift_seen WHERE {key}1=1", self._args())
            )
        return {a: t for a, t in rows}

    # --- reading ----------------------------------------------------------------------------------

    def _rows(self, where: str = "", args: tuple = ()) -> list[tuple]:
        p, key = self.prefix, self._key
        sql = f"SELECT seq, kind, time, address, run, emergency, record, hash FROM {p}history WHERE {key}1=1{where} "
        with self._lock:
            return self._transaction(lambda execute: execute(sql + "ORDER BY seq", self._args(*args)))

    def records(self, selection: HistoryFilter = HistoryFilter()) -> list[dict[str, Any]]:
        where, args = "", list[Any]()
        if selection.kind:
            where, args = where + " AND kind=?", [*args, selection.kind]
        if selection.run is not None:
            where, args = where + " AND run=?", [*args, selection.run]
        found = [json.loads(row[6]) for row in self._rows(where, tuple(args))]
        return [r for r in found if selection.keeps(r)]

    def verify(self) -> Chain:
        """Recompute the chain from the first record; name the first one altered, removed or reordered."""
        previous, count = GENESIS, 0
        for seq, kind, time, address, run, emergency, text, stored_hash in self._rows():
            count += 1
            try:
                record = json.loads(text)
            except ValueError:
                return Chain(count, previous, f"record #{seq} is not JSON any more: it was altered")
            name = _name(record, seq)
            if record.get("previous") != previous or record.get("seq") != count or int(seq) != count:
                return Chain(
                    count,
                    previous,
                    f"{name} does not follow the record before it (expected #{count} after {previous[:12]}…): "
                    "records were removed or reordered",
                )
            recomputed = hashlib.sha256(canonical(record)).hexdigest()
            if recomputed != record.get("hash") or stored_hash != record.get("hash"):
                return Chain(count, previous, f"{name} was altered: its hash does not match its contents")
            indexed = (kind, time, address, run, bool(emergency))
            held = (
                record.get("kind"),
                record.get("time"),
                record.get("address"),
                record.get("run"),
                bool(record.get("emergency")),
            )
            if indexed != held:
                return Chain(count, previous, f"{name} was altered: its columns no longer match the record")
            previous = stored_hash
        return Chain(count, previous)


class SqliteHistory(History):
    """The embedded history: `history.db` beside the journal, 0600, WAL, every append fsynced."""

    def __init__(self, path: Path, *, readonly: bool = False):
        super().__init__("local")
        self.path = path
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
                return
            self._db = open_private(path)
            for ddl in history_ddl("", workspace_column=False):
                self._db.execute(ddl)
            for op in ("UPDATE", "DELETE"):
                self._db.execute(
                    f"CREATE TRIGGER IF NOT EXISTS history_no_{op.lower()} BEFORE {op} ON history "
                    "BEGIN SELECT RAISE(ABORT, 'the history is append-only'); END"
                )
        except sqlite3.Error as e:
            raise StateBackendError(f"the history {path} cannot be opened ({e}); nothing was written") from e

    @classmethod
    def open_readonly(cls, path: Path) -> SqliteHistory | None:
        return cls(path, readonly=True) if path.exists() else None

    def _transaction(self, work: Callable[[Execute], T]) -> T:
        try:
            if not self._writable():
                return work(lambda sql, args: self._db.execute(sql, args).fetchall())
            return immediate(self._db, work)  # one writer at a time: the head read and the append are one
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return []  # type: ignore[return-value]  # an older file: nothing recorded yet
            raise StateBackendError(f"the history {self.path} failed: {e}") from e
        except sqlite3.Error as e:
            raise StateBackendError(f"the history {self.path} failed: {e}") from e

    def _writable(self) -> bool:
        return self._db.isolation_level is None  # the read-only connection keeps sqlite3's default

    def close(self) -> None:
        with self._lock:
            self._db.close()
