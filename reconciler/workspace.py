"""Which workspace a run belongs to: its journal and lock are keyed by what it manages and where.

The key is the manifests' paths (relative to the repository root, so two checkouts of one repository,
on one machine or on two CI runners, share it) and the two vendor endpoints (so a test tenant's
journal never tracks production batch ids). `--sandbox` runs get a throwaway workspace of their own:
their emulator lives for one command, and so do its batch ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

__all__ = ["Workspace", "endpoint_label", "sandbox_workspace", "workspace_for"]


@dataclass(frozen=True)
class Workspace:
    key: str                 # 16 hex digits
    label: str               # for people: "manifests @ orion-host + sei-host"
    directory: Path

    @property
    def journal_path(self) -> Path:
        return self.directory / "journal.db"

    @property
    def lock_path(self) -> Path:
        return self.directory / "lock"


def endpoint_label(url: str) -> str:
    """scheme://host[:port]/path of a base URL, never its userinfo."""
    p = urlsplit(url)
    host = p.netloc.rpartition("@")[2]
    return f"{p.scheme}://{host}{p.path.rstrip('/')}" if p.scheme else url


def _repo_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return Path.cwd().resolve()


def workspace_for(base: Path, paths: tuple[str, ...] | list[str], orion_url: str, sei_url: str) -> Workspace:
    resolved = [Path(p).resolve() for p in (paths or ("manifests",))]
    root = _repo_root(resolved[0] if resolved[0].is_dir() else resolved[0].parent)
    rel = sorted(os.path.relpath(p, root) for p in resolved)
    endpoints = [endpoint_label(orion_url), endpoint_label(sei_url)]
    key = hashlib.sha256(json.dumps([rel, endpoints]).encode()).hexdigest()[:16]
    hosts = " + ".join(urlsplit(u).netloc.rpartition("@")[2] or u for u in endpoints)
    return Workspace(key, f"{', '.join(rel)} @ {hosts}", base / key)


@contextmanager
def sandbox_workspace() -> Iterator[Workspace]:
    directory = Path(tempfile.mkdtemp(prefix="reconciler-sandbox-"))
    try:
        yield Workspace("sandbox", "the in-process sandbox (this command only)", directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
