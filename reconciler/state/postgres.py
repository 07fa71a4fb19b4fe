"""Shared state on PostgreSQL: the journal and the workspace lease outlive the CI runner.

The only module that imports psycopg. Chosen by RECONCILER_BACKEND_URL=postgresql://… (a secret;
`postgresql://` alone lets the standard libpq variables PGHOST, PGUSER, PGPASSWORD… fill it in).

- The journal's tables live in a schema of their own, `reconciler`, versioned in `reconciler.meta`,
  created or migrated on first use under a transaction-scoped advisory lock (two first runs at once
  do not race). Every row carries its workspace key.
- One apply per workspace: a *session* advisory lock on a dedicated connection, keyed by the
  workspace (never database-wide, so unrelated workspaces never block each other). It vanishes with
  the holder's session: a SIGKILL closes the socket and frees it at once; a runner that vanishes
  from the network is dropped by the server's TCP keepalives (set per session: idle 5 s, interval
  2 s, 3 probes) within about 11 s. Beside it, a `leases` row says who holds it (host, pid, user,
  CI run URL, commit, plan digest, start, heartbeat) and stays readable after the holder died, so
  `lock status` and the error a second apply sees name the real holder (Terraform #32075, OpenTofu #1302).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import psycopg

from reconciler.config import Secret, mask_url
from reconciler.config.environment import RunFacts
from reconciler.errors import LockError, StateBackendError
from reconciler.state.claims import Claims, Execute, Holder, T, claims_ddl
from reconciler.state.history import History, append_only_ddl, history_ddl
from reconciler.state.journal import SCHEMA_VERSION, Journal, journal_ddl

__all__ = ["PostgresClaims", "PostgresJournal", "PostgresLease", "connect", "lease_rows", "release_dead_leases"]

SCHEMA = "reconciler"
HEARTBEAT_SECONDS = 5.0
# Server-side keepalives for the lock's session: a vanished client is noticed in about 5 + 2 × 3 s.
_KEEPALIVE_SQL = (
    "SET tcp_keepalives_idle = 5",
    "SET tcp_keepalives_interval = 2",
    "SET tcp_keepalives_count = 3",
    "SET client_connection_check_interval = '2s'",
)
_MIGRATION_LOCK = 0x7265636F6E63  # "reconc": one key for schema creation, never for workspaces
_CLAIMS_LOCK = 0x636C61696D73  # "claims": claimants take turns, database-wide (a claim is a few rows)


def _redact(url: Secret, text: str) -> str:
    """A server message as one readable line: its password masked, its tabs and newlines (libpq indents
    with them, and a terminal shows them as a literal `\\t`) folded into single spaces."""
    password = urlsplit(url.reveal()).password
    text = " ".join((text.replace(password, "****") if password else text).split())
    return text


def connect(url: Secret, *, migrate: bool = True) -> psycopg.Connection:
    """A connection in autocommit mode (every journal entry is its own committed transaction).

    `migrate=False` for readers (plan, lock status): they never create or change the schema, so a
    role with SELECT only (what a pull-request job should hold) is enough."""
    try:
        conn = psycopg.connect(
            url.reveal(),
            autocommit=True,
            connect_timeout=10,
            application_name="reconciler",
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )
    except psycopg.Error as e:
        raise StateBackendError(
            f"cannot connect to the state backend {mask_url(url.reveal())} "
            f"(RECONCILER_BACKEND_URL): {_redact(url, str(e).strip())}"
        ) from e
    for sql in _KEEPALIVE_SQL:
        try:
            conn.execute(sql)
        except psycopg.errors.UndefinedObject:  # client_connection_check_interval is PostgreSQL 14+
            pass
    if migrate:
        _ensure_schema(conn)
    return conn


def _ensure_schema(conn: psycopg.Connection) -> None:
    """Create or upgrade the schema; nothing to do (and no CREATE right needed) once it is current."""
    try:
        row = conn.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'schema_version'").fetchone()
        if row and int(row[0]) == SCHEMA_VERSION:
            return
    except psycopg.errors.UndefinedTable:
        pass
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        for ddl in journal_ddl(f"{SCHEMA}.", "BIGSERIAL PRIMARY KEY", "DOUBLE PRECISION", "BIGINT"):
            conn.execute(ddl)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.leases (workspace TEXT PRIMARY KEY, label TEXT, "
            "holder TEXT, backend_pid INTEGER, started TEXT, heartbeat TEXT)"
        )
        for ddl in (
            claims_ddl(f"{SCHEMA}.") + history_ddl(f"{SCHEMA}.", workspace_column=True) + append_only_ddl(SCHEMA)
        ):
            conn.execute(ddl)
        row = conn.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'schema_version'").fetchone()
        if row and int(row[0]) > SCHEMA_VERSION:
            raise StateBackendError(
                f"the state backend holds journal schema v{row[0]}, newer than this reconciler "
                f"(v{SCHEMA_VERSION}); upgrade reconciler before applying"
            )
        conn.execute(
            f"INSERT INTO {SCHEMA}.meta VALUES ('schema_version', %s) ON CONFLICT (key) DO UPDATE "
            "SET value = EXCLUDED.value",
            (str(SCHEMA_VERSION),),
        )


class PostgresJournal(Journal):
    prefix = f"{SCHEMA}."

    def __init__(self, url: Secret, workspace: str, *, readonly: bool = False):
        super().__init__(workspace)
        self._url = url
        self._conn = connect(url, migrate=not readonly)

    def _durable(self, durable: bool) -> None:
        # an outcome need not wait for the server's WAL flush; an intent does (the server's default)
        self._execute(f"SET synchronous_commit TO {'on' if durable else 'off'}", (), False)

    def _execute(self, sql: str, args: tuple, fetch: bool) -> list[tuple]:
        try:
            cur = self._conn.execute(sql.replace("?", "%s"), args)
            return cur.fetchall() if fetch else []
        except psycopg.errors.UndefinedTable:
            return []  # a reader before the first apply created the schema: nothing is in doubt
        except psycopg.Error as e:
            raise StateBackendError(f"the state backend failed: {_redact(self._url, str(e).strip())}") from e

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _Borrowed(Journal):
    """Another workspace's journal, read on a connection we already hold (inside a claim's transaction)."""

    prefix = f"{SCHEMA}."

    def __init__(self, execute: Callable[[str, tuple], list[tuple]], workspace: str):
        super().__init__(workspace)
        self._run = execute

    def _execute(self, sql: str, args: tuple, fetch: bool) -> list[tuple]:
        return self._run(sql, args)

    def close(self) -> None:
        pass


class PostgresHistory(History):
    """The shared history: one table for every workspace, appended under a per-workspace advisory lock."""

    prefix = f"{SCHEMA}."
    _key = "workspace=? AND "

    def __init__(self, url: Secret, workspace: str, *, readonly: bool = False):
        super().__init__(workspace)
        self._url = url
        self._conn = connect(url, migrate=not readonly)

    def _args(self, *args: Any) -> tuple:
        return (self.workspace, *args)

    def _transaction(self, work: Callable[[Execute], T]) -> T:
        try:
            return _serialised(self._conn, _lock_key("history:" + self.workspace), work)
        except psycopg.errors.UndefinedTable:
            return []  # type: ignore[return-value]  # a reader before the first apply: no history yet
        except psycopg.Error as e:
            raise StateBackendError(f"the state backend failed on history: {_redact(self._url, str(e).strip())}") from e

    close = PostgresJournal.close


class PostgresClaims(Claims):
    """Claims in the shared database: every runner and laptop with the same backend sees them."""

    prefix = f"{SCHEMA}."

    def __init__(self, url: Secret, workspace: str, label: str):
        super().__init__(workspace, label)
        self._url = url
        self._conn = connect(url)

    def _transaction(self, work: Callable[[Execute], T]) -> T:
        try:
            return _serialised(self._conn, _CLAIMS_LOCK, work)
        except psycopg.Error as e:
            raise StateBackendError(f"the state backend failed on claims: {_redact(self._url, str(e).strip())}") from e

    def _alive(self, execute: Execute, holder: Holder, entry: str) -> bool:
        lease = execute(
            f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.leases l JOIN pg_locks k ON k.pid = l.backend_pid AND "
            "k.locktype = 'advisory' AND k.granted WHERE l.workspace = ?)",
            (holder.workspace,),
        )
        return bool(lease[0][0]) or entry in _Borrowed(execute, holder.workspace).standing([entry])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _serialised(conn: psycopg.Connection, lock: int, work: Callable[[Execute], T]) -> T:
    """Run `work(execute)` (portable `?` SQL) in one transaction holding the advisory lock `lock`: one
    writer at a time for the history's head and append, and for a claim's check and insert."""

    def execute(sql: str, args: tuple) -> list[tuple]:
        cur = conn.execute(sql.replace("?", "%s"), args)
        return cur.fetchall() if cur.description else []

    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
        return work(execute)


def _lock_key(workspace: str) -> int:
    return int.from_bytes(hashlib.sha256(f"reconciler-lease:{workspace}".encode()).digest()[:8], "big", signed=True)


def _holder(command: str, facts: RunFacts) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "user": facts.operator,
        "command": command,
        "ci_run_url": facts.run_url,
        "commit": facts.commit,
        "plan_digest": None,
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class PostgresLease:
    """The workspace's lease: a session advisory lock on its own connection, and a row naming the holder."""

    def __init__(
        self,
        url: Secret,
        workspace: str,
        label: str,
        command: str,
        facts: RunFacts,
        waiting: Callable[[str], None] = lambda text: None,
    ):
        self.url, self.workspace, self.label, self.command = url, workspace, label, command
        self.waiting = waiting
        self._conn: psycopg.Connection | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._io = threading.Lock()
        self.info = _holder(command, facts)

    @property
    def held(self) -> bool:
        return self._conn is not None

    def acquire(self, *, timeout: float = 0.0, poll: float = 0.5) -> None:
        conn = connect(self.url)
        key = _lock_key(self.workspace)
        deadline = time.monotonic() + timeout
        told = False
        while not _one(conn, "SELECT pg_try_advisory_lock(%s)", (key,)):
            holder = _describe(lease_rows(conn, self.workspace))
            if time.monotonic() >= deadline:
                conn.close()
                raise LockError(
                    f"the workspace {self.label} is locked by a running apply: {holder}; wait for it "
                    "to finish (its lease ends with its database session, so no flag is ever needed)"
                )
            if not told:
                self.waiting(f"waiting up to {timeout:g} s for the workspace lease held by {holder}")
                told = True
            time.sleep(poll)
        self._conn = conn
        now = _now()
        conn.execute(
            f"INSERT INTO {SCHEMA}.leases VALUES (%s, %s, %s, pg_backend_pid(), %s, %s) ON CONFLICT "
            "(workspace) DO UPDATE SET label = EXCLUDED.label, holder = EXCLUDED.holder, backend_pid = "
            "EXCLUDED.backend_pid, started = EXCLUDED.started, heartbeat = EXCLUDED.heartbeat",
            (self.workspace, self.label, json.dumps(self.info), now, now),
        )
        self._beat = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
        self._beat.start()

    def annotate(self, **fields: Any) -> None:
        """Add what becomes known later (the plan digest) to the lease row."""
        self.info.update(fields)
        with self._io:
            if self._conn is not None:
                self._conn.execute(
                    f"UPDATE {SCHEMA}.leases SET holder = %s WHERE workspace = %s AND backend_pid = pg_backend_pid()",
                    (json.dumps(self.info), self.workspace),
                )

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._io:
                if self._conn is None:
                    return
                try:
                    self._conn.execute(
                        f"UPDATE {SCHEMA}.leases SET heartbeat = %s WHERE workspace = %s AND "
                        "backend_pid = pg_backend_pid()",
                        (_now(), self.workspace),
                    )
                except psycopg.Error:
                    return  # the session is gone, and with it the lock; apply's own writes will say so

    def release(self) -> None:
        self._stop.set()
        with self._io:
            if self._conn is None:
                return
            try:
                self._conn.execute(
                    f"DELETE FROM {SCHEMA}.leases WHERE workspace = %s AND backend_pid = pg_backend_pid()",
                    (self.workspace,),
                )
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(self.workspace),))
            except psycopg.Error:
                pass
            finally:
                self._conn.close()
                self._conn = None


def _one(conn: psycopg.Connection, sql: str, args: tuple) -> Any:
    """The single value a one-row, one-column query answers."""
    row = conn.execute(sql, args).fetchone()
    assert row is not None, sql
    return row[0]


def lease_rows(conn: psycopg.Connection, workspace: str | None = None) -> list[dict[str, Any]]:
    """Every lease (or one workspace's), with `alive`: whether its session still holds the lock."""
    if _one(conn, "SELECT to_regclass(%s)", (f"{SCHEMA}.leases",)) is None:
        return []
    rows = conn.execute(
        f"SELECT l.workspace, l.label, l.holder, l.backend_pid, l.started, l.heartbeat, EXISTS (SELECT 1 FROM pg_locks "
        "k WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.backend_pid) "
        f"FROM {SCHEMA}.leases l WHERE %s::text IS NULL OR l.workspace = %s ORDER BY l.workspace",
        (workspace, workspace),
    ).fetchall()
    return [
        {
            "workspace": r[0],
            "label": r[1],
            **json.loads(r[2] or "{}"),
            "started": r[4],
            "heartbeat": r[5],
            "alive": bool(r[6]),
        }
        for r in rows
    ]


def release_dead_leases(conn: psycopg.Connection, workspace: str) -> list[dict[str, Any]]:
    """Remove the lease rows of holders whose session is gone; a live holder's is never touched."""
    dead = [r for r in lease_rows(conn, workspace) if not r["alive"]]
    for r in dead:
        conn.execute(f"DELETE FROM {SCHEMA}.leases WHERE workspace = %s", (r["workspace"],))
    return dead


def _describe(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "another apply (its lease row is not written yet)"
    r = rows[0]
    where = f" ({r['ci_run_url']})" if r.get("ci_run_url") else ""
    return (
        f"pid {r.get('pid')} on {r.get('host')} (user {r.get('user')}) since {r.get('started')}{where}, "
        f"last heartbeat {r.get('heartbeat')}"
    )
