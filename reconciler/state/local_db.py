"""The local stores' SQLite files (journal, history, claims): opened one way, written one way.

Each is a private file (0600 in a 0700 folder: they name accounts and tickets), in WAL mode with
`synchronous=FULL`, so a commit is on disk before the request it describes leaves. Writers that
read and then write (the history's head and append, a claim's check and insert) do both in one
`BEGIN IMMEDIATE` transaction: one writer at a time across processes. Callers turn sqlite3 and OS
errors into messages that name their own file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["Execute", "immediate", "open_private"]

T = TypeVar("T")
Execute = Callable[[str, tuple], list[tuple]]


def open_private(path: Path) -> sqlite3.Connection:
    """Open (creating it 0600, its folder 0700) the SQLite file at `path`: WAL, every commit fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(str(path), os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # every commit is fsynced before we go on
    return db


def immediate(db: sqlite3.Connection, work: Callable[[Execute], T]) -> T:
    """Run `work(execute)` in one `BEGIN IMMEDIATE` transaction, rolled back if it raises."""

    def execute(sql: str, args: tuple) -> list[tuple]:
        return db.execute(sql, args).fetchall()

    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(execute)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result
