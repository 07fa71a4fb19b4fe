"""The state backend: where a workspace's journal, lock and claims live. The rest of the code asks this module.

Embedded default: SQLite in the workspace's state folder (workspace.py: beside the manifests'
repository root, found the same way from any folder), an flock beside it (lock.py), and claims in
the user's state folder (claims.py). Shared: PostgreSQL (postgres.py), chosen by
RECONCILER_BACKEND_URL, so that recovery, "one apply at a time" and claims hold across CI runners
and laptops. `open_backend` returns one object with the same small interface for both:
`journal()`, `lock()`, `claims()`, `leases()`, `release_dead()`.

A journal left by an older release under the *current folder* (`Workspace.legacy_directory`) is
moved into the state folder by the first apply, under both locks; readers use it where it is until
then. Where both places hold a journal and the old one still holds writes in doubt, apply refuses:
two journals for one workspace is exactly how two applies sent the same registrations (issue 32).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.config import Secret, Settings
from reconciler.config.environment import RunFacts, run_facts
from reconciler.errors import LockError, StateBackendError
from reconciler.state.claims import Claims, SqliteClaims
from reconciler.state.history import History, SqliteHistory
from reconciler.state.journal import Journal
from reconciler.state.lock import Lease, WorkspaceLock, flock_held
from reconciler.state.sqlite import SqliteJournal
from reconciler.state.workspace import Workspace, ensure_state_dir

__all__ = ["Backend", "open_backend"]

_JOURNAL_FILES = ("journal.db", "journal.db-wal", "journal.db-shm")


@dataclass
class Backend:
    workspace: Workspace
    settings: Settings
    sandbox: bool = False
    facts: RunFacts = field(default_factory=run_facts)  # who holds the lock: user, CI run, commit
    notices: list[str] = field(default_factory=list)  # for the CLI to show (e.g. where an old journal was)

    @property
    def name(self) -> str:
        return "postgresql" if self.shared else "sqlite"

    @property
    def shared(self) -> bool:
        return self.settings.backend_url is not None and not self.sandbox

    # --- the journal ------------------------------------------------------------------------------

    @property
    def url(self) -> Secret:
        """RECONCILER_BACKEND_URL, for the shared backend."""
        assert self.settings.backend_url is not None, "only the shared backend has a URL"
        return self.settings.backend_url

    def journal(self) -> Journal:
        """The workspace's journal for an apply: created where there is none (an older one moved in first)."""
        if self.shared:
            from reconciler.state.postgres import PostgresJournal

            return PostgresJournal(self.url, self.workspace.key)
        # one SQLite file is one workspace, so its rows carry the constant "local"
        legacy = self._legacy_journal()
        ensure_state_dir(self.workspace)
        if legacy is not None:
            self._adopt_legacy(legacy)
        return SqliteJournal(self.workspace.journal_path)

    def read_journal(self) -> Journal | None:
        """The journal for a reader (plan, journal, lock status): None where none exists yet; nothing is created."""
        if self.shared:
            from reconciler.state.postgres import PostgresJournal

            return PostgresJournal(self.url, self.workspace.key, readonly=True)
        legacy = self._legacy_journal()
        if legacy is not None and not self.workspace.journal_path.exists():
            self.notices.append(
                f"reading the journal an older reconciler kept at {legacy} (the next apply moves "
                f"it to {self.workspace.journal_path})"
            )
            return SqliteJournal.open_readonly(legacy)
        if legacy is not None:
            self._refuse_two_journals(legacy, readonly=True)
        return SqliteJournal.open_readonly(self.workspace.journal_path)

    def _legacy_journal(self) -> Path | None:
        old = self.workspace.legacy_directory
        return old / "journal.db" if old is not None and (old / "journal.db").exists() else None

    def _refuse_two_journals(self, legacy: Path, *, readonly: bool) -> None:
        old = SqliteJournal.open_readonly(legacy)
        try:
            doubts = old.in_doubt() if old is not None else []
        finally:
            if old is not None:
                old.close()
        if not doubts:
            self.notices.append(
                f"an older journal at {legacy} holds nothing in doubt and is no longer used; delete its folder"
            )
            return
        message = (
            f"two journals for one workspace: {legacy} (kept by an older reconciler run from that folder) still "
            f"holds {len(doubts)} write(s) in doubt, and {self.workspace.journal_path} exists too. Run "
            f"`reconciler journal` from {legacy.parent.parent.parent} to see them, resolve them there "
            "(`reconciler journal resolve`), then delete the old folder"
        )
        if readonly:
            self.notices.append(message)
            return
        raise StateBackendError(message + "; nothing was sent")

    def _adopt_legacy(self, legacy: Path) -> None:
        """Move an older release's journal here, under the old folder's flock (an old apply may still run)."""
        if self.workspace.journal_path.exists():
            self._refuse_two_journals(legacy, readonly=False)
            return
        old_lock = WorkspaceLock(legacy.parent / "lock", "reconciler (moving the journal)", self.facts.operator)
        try:
            old_lock.acquire(timeout=0)
        except LockError as e:
            raise LockError(
                f"an apply started from another folder holds the journal at {legacy}; wait for it to "
                f"finish, then rerun ({e})"
            ) from e
        try:
            for name in _JOURNAL_FILES:
                src = legacy.parent / name
                if src.exists():
                    shutil.move(str(src), str(self.workspace.directory / name))
        finally:
            old_lock.release()
        self.notices.append(f"moved the journal an older reconciler kept at {legacy} to {self.workspace.journal_path}")

    # --- the audit trail --------------------------------------------------------------------------

    def history(self, *, readonly: bool = False) -> History | None:
        """The workspace's history (state/history.py). A reader gets None where none exists yet."""
        if self.shared:
            from reconciler.state.postgres import PostgresHistory

            return PostgresHistory(self.url, self.workspace.key, readonly=readonly)
        if readonly:
            return SqliteHistory.open_readonly(self.workspace.history_path)
        ensure_state_dir(self.workspace)
        return SqliteHistory(self.workspace.history_path)

    # --- lock and claims --------------------------------------------------------------------------

    def lock(self, command: str, waiting: Callable[[str], None] = lambda text: None) -> Lease:
        if self.shared:
            from reconciler.state.postgres import PostgresLease

            return PostgresLease(self.url, self.workspace.key, self.workspace.label, command, self.facts, waiting)
        ensure_state_dir(self.workspace)
        return WorkspaceLock(self.workspace.lock_path, command, self.facts.operator)

    def claims(self) -> Claims:
        """Claims on the resources this workspace sends, shared with every workspace of the same backend."""
        if self.shared:
            from reconciler.state.postgres import PostgresClaims

            return PostgresClaims(self.url, self.workspace.key, self.workspace.label)
        if self.sandbox:  # the in-process sandbox's endpoints live for one command: so do its claims
            where = self.workspace.directory.parent / "claims.db"
        else:
            where = (self.settings.claims_dir or self.facts.state_home / "reconciler") / "claims.db"
        return SqliteClaims(where, self.workspace.label, str(self.workspace.directory.resolve()))

    def leases(self) -> list[dict[str, Any]]:
        """Who holds this workspace (shared: every workspace in the database), with `alive`."""
        if self.shared:
            from reconciler.state.postgres import connect, lease_rows

            with connect(self.url, migrate=False) as conn:
                return lease_rows(conn)
        lock = WorkspaceLock(self.workspace.lock_path, "", "")
        holder = lock.holder()
        if not holder:
            return []
        return [
            {
                "workspace": self.workspace.key,
                "label": self.workspace.label,
                **holder,
                "alive": flock_held(self.workspace.lock_path),
            }
        ]

    def release_dead(self) -> list[dict[str, Any]]:
        """Clear the record of a holder that is gone; refuse (return nothing) for a live one."""
        if self.shared:
            from reconciler.state.postgres import connect, release_dead_leases

            with connect(self.url) as conn:
                return release_dead_leases(conn, self.workspace.key)
        dead = [r for r in self.leases() if not r["alive"]]
        if dead:
            self.workspace.lock_path.write_text("")
        return dead


def open_backend(
    settings: Settings, workspace: Workspace, *, sandbox: bool = False, facts: RunFacts | None = None
) -> Backend:
    return Backend(workspace, settings, sandbox, facts or run_facts())
