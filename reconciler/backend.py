"""The state backend: where a workspace's journal and lock live. The rest of the code asks this module.

Embedded default: SQLite under `.reconciler/<workspace>/` and an flock beside it (lock.py).
Shared: PostgreSQL (pgstate.py), chosen by RECONCILER_BACKEND_URL, so that recovery and "one apply
at a time" hold across CI runners and laptops. `open_backend` returns one object with the same
small interface for both: `journal()`, `lock()`, `leases()`, `release_dead()`, `close()`.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from reconciler.config import Settings
from reconciler.journal import Journal, SqliteJournal
from reconciler.lock import WorkspaceLock
from reconciler.workspace import Workspace

__all__ = ["Backend", "open_backend"]


@dataclass
class Backend:
    workspace: Workspace
    settings: Settings
    sandbox: bool = False
    _conn: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return "postgresql" if self.shared else "sqlite"

    @property
    def shared(self) -> bool:
        return self.settings.backend_url is not None and not self.sandbox

    def journal(self, *, readonly: bool = False) -> Journal | None:
        """The workspace's journal; with `readonly`, None where none exists yet (and nothing is created)."""
        if self.shared:
            from reconciler.pgstate import PostgresJournal

            return PostgresJournal(self.settings.backend_url, self.workspace.key, readonly=readonly)
        # one SQLite file is one workspace, so its rows carry the constant "local"
        if readonly:
            return SqliteJournal.open_readonly(self.workspace.journal_path)
        return SqliteJournal(self.workspace.journal_path)

    def lock(self, command: str, waiting: Callable[[str], None] = lambda text: None):
        if self.shared:
            from reconciler.pgstate import PostgresLease

            return PostgresLease(self.settings.backend_url, self.workspace.key, self.workspace.label, command, waiting)
        return WorkspaceLock(self.workspace.lock_path, command)

    def leases(self) -> list[dict[str, Any]]:
        """Who holds this workspace (shared: every workspace in the database), with `alive`."""
        if self.shared:
            from reconciler.pgstate import connect, lease_rows

            with connect(self.settings.backend_url, migrate=False) as conn:
                return lease_rows(conn)
        lock = WorkspaceLock(self.workspace.lock_path, "")
        holder = lock.holder()
        if not holder:
            return []
        return [{"workspace": self.workspace.key, "label": self.workspace.label, **holder,
                 "alive": _flock_held(self.workspace.lock_path)}]

    def release_dead(self) -> list[dict[str, Any]]:
        """Clear the record of a holder that is gone; refuse (return nothing) for a live one."""
        if self.shared:
            from reconciler.pgstate import connect, release_dead_leases

            with connect(self.settings.backend_url) as conn:
                return release_dead_leases(conn, self.workspace.key)
        dead = [r for r in self.leases() if not r["alive"]]
        if dead:
            self.workspace.lock_path.write_text("")
        return dead


def _flock_held(path) -> bool:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def open_backend(settings: Settings, workspace: Workspace, *, sandbox: bool = False) -> Backend:
    return Backend(workspace, settings, sandbox)
