"""What apply will need of the manifests, kept on disk until it is needed: the declarations of changed
registrations, tickets to create, and resources whose writes are in doubt.

Why on disk: apply sends each registration as the fresh live object with its declared fields laid over
it, built just before its batch (apply/batches.py). So it needs each changed registration's declaration
again, minutes after the stream parsed it. Held in memory, 100,000 of them cost as much as the plan
itself; in a temporary SQLite file (mode 0600, in a private temporary folder, deleted on close) they
cost a page cache. A batch reads its hundred back in one query.

Pickled objects are only ever read back by the process that wrote them, from a file it created.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from reconciler.model import DesiredInstruction, DesiredRegistration, ManifestSet
from reconciler.plan.diff import RegistrationDiff

__all__ = ["Declarations", "DesiredIndex", "DesiredStore"]

Desired = DesiredRegistration | DesiredInstruction


class Declarations(Protocol):
    """Where apply looks up what the manifests declare for an address."""

    def get(self, address: str) -> Desired | None: ...

    def get_many(self, addresses: Iterable[str]) -> dict[str, Desired]: ...

    def planned(self, addresses: Iterable[str]) -> dict[str, tuple[Desired, RegistrationDiff | None]]: ...


class DesiredIndex:
    """The same lookups over declarations already in memory (a loaded ManifestSet): tests and tools."""

    def __init__(self, resources: Iterable[Desired]) -> None:
        self._by = {r.address: r for r in resources}

    @classmethod
    def of(cls, manifests: ManifestSet) -> DesiredIndex:
        return cls([*manifests.registrations, *manifests.instructions])

    def get(self, address: str) -> Desired | None:
        return self._by.get(address)

    def get_many(self, addresses: Iterable[str]) -> dict[str, Desired]:
        return {a: self._by[a] for a in addresses if a in self._by}

    def planned(self, addresses: Iterable[str]) -> dict[str, tuple[Desired, RegistrationDiff | None]]:
        return {a: (d, None) for a, d in self.get_many(addresses).items()}  # no plan's diffs: bodies diff anew


class DesiredStore:
    """address → its declaration, for the resources one apply may touch. Thread-safe."""

    FLUSH = 2_000  # rows written per transaction while the stream fills the store

    def __init__(self, folder: str | Path | None = None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="reconciler-desired-", dir=folder))  # mode 0700
        path = self._dir / "desired.db"
        os.close(os.open(str(path), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")  # scratch data: a crash loses nothing the journal needs
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE desired (address TEXT PRIMARY KEY, body BLOB NOT NULL)")
        self._lock = threading.Lock()
        self._pending: list[tuple[str, bytes]] = []
        self.count = 0

    def put(self, desired: Desired, diff: RegistrationDiff | None = None) -> None:
        """Keep `desired`, and for a changed registration the plan's diff of it (only what a body needs):
        the batch that finds the registration unchanged since the plan builds the body from it, without
        diffing again (deepdiff costs milliseconds a registration)."""
        recipe = None if diff is None else replace(diff, fields=(), ignored=(), labels={}, problems=())
        with self._lock:
            self._pending.append((desired.address, pickle.dumps((desired, recipe), pickle.HIGHEST_PROTOCOL)))
            self.count += 1
            if len(self._pending) >= self.FLUSH:
                self._flush()

    def get(self, address: str) -> Desired | None:
        return self.get_many([address]).get(address)

    def get_many(self, addresses: Iterable[str]) -> dict[str, Desired]:
        return {a: d for a, (d, _) in self.planned(addresses).items()}

    def diff(self, address: str) -> RegistrationDiff | None:
        found = self.planned([address]).get(address)
        return found[1] if found else None

    def planned(self, addresses: Iterable[str]) -> dict[str, tuple[Desired, RegistrationDiff | None]]:
        """Each address's declaration and, for a changed registration, the plan's diff of it."""
        wanted = list(addresses)
        found: dict[str, tuple[Desired, RegistrationDiff | None]] = {}
        with self._lock:
            self._flush()
            for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit, well inside
                part = wanted[start : start + 500]
                marks = ",".join("?" * len(part))
                for address, body in self._db.execute(
                    f"SELECT address, body FROM desired WHERE address IN ({marks})", part
                ):
                    found[address] = pickle.loads(body)
        return found

    def close(self) -> None:
        with self._lock:
            self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> DesiredStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flush(self) -> None:
        if self._pending:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO desired VALUES (?, ?)", self._pending)
            self._db.execute("COMMIT")
            self._pending.clear()
