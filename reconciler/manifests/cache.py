"""A cache of checked manifest files, keyed by content: what a warm `plan` does not parse again.

A file's check (parse, schema, the rules one file allows) depends only on its bytes, its name (which
every message and source carries), the tool's version and the schemas: the key is SHA-256 over all of
them, so an entry is never trusted across versions or schema changes, and a changed file is a new key.
Templates are resolved after the cache, in the stream, so a changed template never hides behind it.

One SQLite file per version and schema set (`checked-<version>-<schemas>.db`) in the user's cache
folder or `--cache-dir`: SQLite makes each write atomic, so a kill leaves whole entries or none; an
entry that does not load, or a file that is not a database, is simply recomputed (and the file
replaced). Entries are pickles, so the folder must be the user's own (0700): `plan` uses the cache, and
`apply` never does (a CI cache restored from a pull request's job must not reach the job that holds
write credentials). Nothing prunes it: delete the folder to start again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from reconciler.version import __version__

__all__ = ["CheckCache", "cache_key"]

log = logging.getLogger(__name__)


@functools.cache
def _salt() -> bytes:
    """The tool's version and the bytes of every schema: any change to them is a new cache."""
    h = hashlib.sha256(__version__.encode() + b"\0")
    folder = resources.files("reconciler.schemas")
    for name in sorted(p.name for p in folder.iterdir() if p.name.endswith((".json", ".yaml"))):
        h.update(name.encode() + b"\0" + folder.joinpath(name).read_bytes() + b"\0")
    return h.digest()


def cache_key(display: str, data: bytes) -> str:
    return hashlib.sha256(_salt() + display.encode() + b"\0" + data).hexdigest()


class CheckCache:
    """The entries of one version and schema set; every method fails soft (a cache is never an error)."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / f"checked-{__version__}-{_salt().hex()[:16]}.db"
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = self._open()
        except (OSError, sqlite3.Error) as e:
            log.debug("the manifest cache %s is not usable (%s); checking every file", self.path, e)
            self._replace()

    def _open(self) -> sqlite3.Connection:
        if not self.path.exists():
            os.close(os.open(str(self.path), os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
        db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # an entry lost to a power cut is recomputed
        db.execute("CREATE TABLE IF NOT EXISTS checked (key TEXT PRIMARY KEY, blob BLOB NOT NULL)")
        return db

    def _replace(self) -> None:
        """A file that is not a database (damaged, or something else): set aside and start empty."""
        try:
            if self.path.exists():
                self.path.replace(self.path.with_suffix(".damaged"))
            self._db = self._open()
        except (OSError, sqlite3.Error) as e:
            log.debug("the manifest cache %s cannot be replaced (%s); not caching", self.path, e)
            self._db = None

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        if self._db is None or not keys:
            return {}
        found: dict[str, bytes] = {}
        try:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                rows = self._db.execute(
                    f"SELECT key, blob FROM checked WHERE key IN ({','.join('?' * len(part))})", part
                ).fetchall()
                found.update({k: bytes(b) for k, b in rows})
        except sqlite3.Error as e:
            log.debug("reading the manifest cache failed (%s); checking the files", e)
            self._replace()
            return {}
        return found

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        if self._db is None:
            return
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO checked VALUES (?, ?)", list(items))
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            log.debug("writing the manifest cache failed (%s); it is only a cache", e)
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
