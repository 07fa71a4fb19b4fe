"""The embedded journal: one SQLite file per workspace, in the workspace's state folder.

WAL mode and `synchronous=FULL`: every entry is on disk before the request it describes leaves; outcomes
(journal.py `_write(durable=False)`) ride along with the next durable commit. Files
are 0600 in a 0700 folder (the journal names accounts and tickets). A file that is not a journal, or
is damaged, is named with what to do (`damaged_journal`), and `salvage` shows what can still be read.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from reconciler.errors import StateBackendError
from reconciler.state.journal import SCHEMA_VERSION, Journal, journal_ddl
from reconciler.state.local_db import open_private

__all__ = ["SqliteJournal", "damaged_journal", "salvage"]

# what SQLite raises for our own mistakes (a duplicate key, a closed connection), never for a damaged file
_NOT_DAMAGE = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def damaged_journal(path: Path, e: BaseException) -> StateBackendError:
    """A journal file that cannot be read: say which, that nothing was sent, and what to do."""
    return StateBackendError(
        f"the journal {path} cannot be read ({e}); nothing was sent. It is the record of writes whose outcome "
        "may be in doubt, so check the vendors' state first (`reconciler journal` lists what it can still read "
        "from it; `reconciler plan` shows live state), and only then move the file aside: the next apply starts "
        "a new journal"
    )


def salvage(path: Path) -> list[str]:
    """What can still be read from a damaged journal file, table by table, as lines for a person."""
    lines: list[str] = []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as e:
        return [f"(nothing: {e})"]
    try:
        for table, columns in (
            ("batches", "local_id, state, batch_id, addresses, submitted_at"),
            ("tickets", "ticket_id, event, address, at"),
        ):
            try:
                rows = db.execute(f"SELECT {columns} FROM {table}").fetchall()
            except sqlite3.Error as e:
                lines.append(f"{table}: unreadable ({e})")
                continue
            lines += [f"{table}: " + ", ".join(str(v) for v in row) for row in rows]
    finally:
        db.close()
    return lines


class SqliteJournal(Journal):
    """The embedded default: one SQLite file per workspace, WAL, every commit fsynced, mode 0600."""

    def __init__(self, path: Path, *, workspace: str = "local", readonly: bool = False):
        super().__init__(workspace)
        self.path = path
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
                self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a damaged file fails here
                return
            self._db = open_private(path)
            for ddl in journal_ddl("", "INTEGER PRIMARY KEY AUTOINCREMENT", "REAL", "INTEGER"):
                self._db.execute(ddl)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as e:
            if isinstance(e, _NOT_DAMAGE):
                raise
            raise damaged_journal(path, e) from e
        for suffix in ("-wal", "-shm"):
            side = Path(str(path) + suffix)
            if side.exists():
                os.chmod(side, 0o600)

    @classmethod
    def open_readonly(cls, path: Path, workspace: str = "local") -> SqliteJournal | None:
        """For `plan`: the journal if one exists, never creating or locking anything. A damaged one raises."""
        if not path.exists():
            return None
        return cls(path, workspace=workspace, readonly=True)

    def _durable(self, durable: bool) -> None:
        # WAL: FULL fsyncs the log at each commit; NORMAL leaves it to the next FULL commit or checkpoint
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")

    def _execute(self, sql: str, args: tuple, fetch: bool) -> list[tuple]:
        try:
            cur = self._db.execute(sql, args)
            return cur.fetchall() if fetch else []
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return []
            raise
        except sqlite3.DatabaseError as e:  # "file is not a database", "database disk image is malformed"
            if isinstance(e, _NOT_DAMAGE):
                raise
            raise damaged_journal(self.path, e) from e

    def close(self) -> None:
        with self._lock:
            self._db.close()
