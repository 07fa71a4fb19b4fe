"""Manifest trees for tests: copies of the example estate, in repositories of their own, or generated."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..benchmarks.estate import write_estate
from .processes import ROOT
from .sandbox import control

__all__ = ["committed_repository", "estate", "example_tree", "git", "repository"]


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


GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` as a fixed author, with nothing of the user's configuration."""
    import subprocess

    return subprocess.run(
        ["git", *args], cwd=repo, env={**GIT_ENV, "PATH": "/usr/bin:/bin"}, check=True, capture_output=True, text=True
    ).stdout


def committed_repository(where: Path) -> Path:
    """The example estate in a Git repository of its own, committed on `main`."""
    shutil.copytree(ROOT / "manifests", where / "manifests")
    git(where, "init", "-q", "-b", "main")
    git(where, "add", ".")
    git(where, "commit", "-qm", "base")
    return where
