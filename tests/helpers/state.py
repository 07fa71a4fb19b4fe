"""Test access to the state a run left: journals found by folder, claims of a test workspace."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.state.claims import SqliteClaims
from reconciler.state.sqlite import SqliteJournal

__all__ = ["claims_for", "journal_file", "journal_has", "journal_holds", "state_journal"]


def journal_file(workspace: Path) -> Path:
    """The journal under a RECONCILER_WORKSPACE folder (one sub-folder per workspace key)."""
    found = sorted(workspace.glob("*/journal.db"))
    return found[0] if found else workspace / "none" / "journal.db"


def state_journal(root: Path) -> Path | None:
    """The journal of the one workspace whose state lives under `root`/.reconciler, if there is one."""
    found = sorted((root / ".reconciler").glob("*/journal.db"))
    return found[0] if found else None


def journal_has(db: Path | None, sql: str) -> bool:
    """Whether `sql` finds a row in the journal file `db` (False while it does not exist or is busy)."""
    if db is None or not db.exists():
        return False
    try:
        with sqlite3.connect(str(db), timeout=1) as c:
            return bool(c.execute(sql).fetchone())
    except sqlite3.Error:
        return False


def journal_holds(db: Path | None, state: str) -> bool:
    """Whether the journal at `db` holds an open batch in `state` (submitting, submitted, in-doubt…)."""
    if db is None or not db.exists():
        return False
    try:
        j = SqliteJournal.open_readonly(db)
        try:
            return j is not None and any(b.state == state for b in j.open_batches())
        finally:
            if j is not None:
                j.close()
    except Exception:
        return False


def claims_for(tmp_path: Path, workspace: str = "test") -> SqliteClaims:
    """Claims of one test workspace, in the test's own folder (state/claims.py)."""
    return SqliteClaims(tmp_path / "claims.db", workspace, str(tmp_path / workspace))
