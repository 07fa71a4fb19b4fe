"""Manifest trees for tests: copies of the example estate, in repositories of their own."""

from __future__ import annotations

import shutil
from pathlib import Path

from .processes import ROOT

__all__ = ["repository", "state_journal"]


def repository(where: Path, manifests: str = "manifests") -> Path:
    """A manifests repository (a `.git` folder is what marks its root) holding the example estate."""
    (where / ".git").mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "manifests", where / manifests)
    return where


def state_journal(root: Path) -> Path | None:
    """The journal of the one workspace whose state lives under `root`/.reconciler, if there is one."""
    found = sorted((root / ".reconciler").glob("*/journal.db"))
    return found[0] if found else None
