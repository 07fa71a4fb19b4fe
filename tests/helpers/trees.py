"""Manifest trees for tests: copies of the example estate, in repositories of their own, or generated."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..benchmarks.estate import write_estate
from .processes import ROOT
from .sandbox import control

__all__ = ["estate", "example_tree", "repository"]


def repository(where: Path, manifests: str = "manifests") -> Path:
    """A manifests repository (a `.git` folder is what marks its root) holding the example estate."""
    (where / ".git").mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "manifests", where / manifests)
    return where


def example_tree(where: Path) -> Path:
    """A copy of the example manifests (no repository around it) to edit in a test."""
    shutil.copytree(ROOT / "manifests", where)
    return where


def estate(sb, tmp_path: Path, regs: int, instrs: int = 0, drift: float = 0.01) -> str:
    """A generated estate: manifests under tmp_path/m, and `sb` seeded with the live state they drift from."""
    state = write_estate(tmp_path / "m", regs, instrs, drift=drift)
    control(sb, "PUT", "/state", json=state)
    control(sb, "POST", "/counters/reset")
    return str(tmp_path / "m")
