"""Writing files that may hold business data: atomically, mode 0600, never through a symlink.

Saved plans, apply reports, drift reports and imported manifests all go through `write_private`,
so a kill mid-write leaves the old file or the new one, never half of one; a planted symlink is
refused rather than followed; and client data is readable by its owner only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from reconciler.errors import ReconcilerError

__all__ = ["check_writable", "write_private"]


def check_writable(path: str | Path, what: str = "file") -> Path:
    """Refuse now, before any vendor write, a path that could not be written later."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if os.path.islink(p):
        raise ReconcilerError(f"{p}: is a symbolic link; refusing to write the {what} through it")
    if p.is_dir():
        raise ReconcilerError(f"{p}: is a directory; give a file name for the {what}")
    if not parent.is_dir():
        raise ReconcilerError(
            f"{p}: the folder {parent} does not exist; create it or choose another path "
            f"for the {what} (nothing was written)"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReconcilerError(f"{p}: the folder {parent} is not writable; choose another path for the {what}")
    return p


def write_private(path: str | Path, data: bytes | str, *, mode: int = 0o600, overwrite: bool = True) -> Path:
    """Write `data` to `path` atomically (temp file + fsync + rename) with `mode`; never follow a symlink."""
    target = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if os.path.islink(target):
        raise ReconcilerError(f"{target}: is a symbolic link; refusing to write through it")
    if not overwrite and os.path.lexists(target):
        raise ReconcilerError(f"{target}: exists; refusing to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(target.parent), prefix=f".{target.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)  # rename replaces a link itself; it never writes through one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
