"""One apply at a time per workspace: an OS-level lock that the kernel releases when its holder dies.

`fcntl.flock` on `<workspace>/lock`, held for the whole run. A killed, SIGTERM'd or crashed apply
frees it the moment its process ends, so a rerun never needs a flag. The file also names the holder
(pid, host, user, start, command) for the error a second apply sees; that text is only a label, the
flock is the lock. `--break-lock` therefore has nothing to break: a held flock means a live holder,
and a live holder's lock is never broken. (flock is local to one machine; a shared lock across CI
runners is the PostgreSQL backend's job.)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Protocol

from reconciler.errors import LockError

__all__ = ["Lease", "WorkspaceLock", "flock_held"]


class Lease(Protocol):
    """What apply needs of a workspace lock, local (WorkspaceLock) or shared (postgres.PostgresLease)."""

    def acquire(self, *, timeout: float = 0.0) -> None: ...

    def annotate(self, **fields: Any) -> None: ...

    def release(self) -> None: ...


class WorkspaceLock:
    def __init__(self, path: Path, command: str, user: str):
        self.path = path
        self.command = command
        self.user = user
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text() or "null")
        except (OSError, ValueError):
            return None

    def acquire(self, *, timeout: float = 0.0, poll: float = 0.2) -> None:
        """Take the lock, waiting up to `timeout` seconds for a running apply to finish."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(str(self.path), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as e:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    h = self.holder() or {}
                    raise LockError(
                        f"the workspace is locked by a running apply: pid {h.get('pid', '?')} on {h.get('host', '?')}"
                        f" (user {h.get('user', '?')}) since {h.get('started', '?')} ({h.get('command', '?')}); "
                        "wait for it to finish. Its lock ends with its process, so no flag is ever needed"
                    ) from e
                time.sleep(poll)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "user": self.user,
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": self.command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def annotate(self, **fields: Any) -> None:
        """Add what becomes known later (the plan digest) to the holder's label."""
        if self._fd is None:
            return
        info = {**(self.holder() or {}), **fields}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(info).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            finally:
                os.close(self._fd)  # closing the descriptor releases the flock
                self._fd = None

    def __enter__(self) -> WorkspaceLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def flock_held(path: Path) -> bool:
    """Whether a live process holds the flock on `path` (without taking it for more than an instant)."""
    try:
        fd = os.open(str(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
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
