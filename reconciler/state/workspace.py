"""Which workspace a run belongs to, and where its state lives: found from the manifests, never the current folder.

The key is the manifests' paths (relative to the workspace root, so two checkouts of one repository,
on one machine or on two CI runners, share it) and the two vendor endpoints (so a test tenant's
journal never tracks production batch ids).

The root is the manifests' repository (the nearest folder holding `.git`), or the manifests' own folder
when there is none. State lives in `<root>/.reconciler/<key>/` unless RECONCILER_WORKSPACE (or
`workspace:` in reconciler.yaml) names another folder; a relative one is taken from the root too. So
`apply` from the repository root, `apply /abs/path/manifests` from elsewhere and `lock status` through a
symlink all open the same journal and the same lock (issue 32: two journals for one workspace let two
applies put the same registrations in two batches).

Releases before this one kept state under the *current folder*. `legacy_directory` says where such a
run would have kept it, so the backend can move it here or refuse, never silently start an empty
journal beside one that holds writes in doubt. `--sandbox` runs get a throwaway workspace of their own:
their emulator lives for one command, and so do its batch ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from reconciler.config import Settings
from reconciler.config.urls import endpoint_label

__all__ = [
    "STATE_FOLDER",
    "Workspace",
    "ensure_state_dir",
    "run_workspace",
    "sandbox_workspace",
    "workspace_for",
    "workspace_root",
]

STATE_FOLDER = ".reconciler"
# Written into the state folder when it is created: journals name accounts and tickets, and nobody
# should have to remember to keep them out of Git.
_GITIGNORE = "# reconciler's journal and lock: local state, never committed\n*\n"


@dataclass(frozen=True)
class Workspace:
    key: str  # 16 hex digits
    label: str  # for people: "manifests @ orion-host + sei-host"
    directory: Path  # this workspace's state folder
    root: Path | None = None  # the repository root (or manifests folder) it was found from
    legacy_directory: Path | None = None  # where an older reconciler run from this folder kept it

    @property
    def journal_path(self) -> Path:
        return self.directory / "journal.db"

    @property
    def history_path(self) -> Path:
        return self.directory / "history.db"

    @property
    def lock_path(self) -> Path:
        return self.directory / "lock"


def _folder(path: Path) -> Path:
    return path if path.is_dir() or not path.suffix else path.parent


def _repository(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def workspace_root(paths: Sequence[str]) -> Path:
    """The manifests' repository root, else the folder of the first manifests path (symlinks resolved)."""
    first = _folder(Path((paths or ("manifests",))[0]).resolve())
    return _repository(first) or first


def _key(paths: Sequence[str], root: Path, endpoints: list[str]) -> tuple[str, list[str]]:
    rel = sorted(os.path.relpath(Path(p).resolve(), root) for p in (paths or ("manifests",)))
    return hashlib.sha256(json.dumps([rel, endpoints]).encode()).hexdigest()[:16], rel


def workspace_for(paths: Sequence[str], orion_url: str, sei_url: str, state_dir: Path | None = None) -> Workspace:
    """The workspace of `paths` against these endpoints. `state_dir`: RECONCILER_WORKSPACE, if set."""
    root = workspace_root(paths)
    endpoints = [endpoint_label(orion_url), endpoint_label(sei_url)]
    key, rel = _key(paths, root, endpoints)
    chosen = Path(state_dir) if state_dir is not None else Path(STATE_FOLDER)
    base = chosen if chosen.is_absolute() else root / chosen
    hosts = " + ".join(urlsplit(u).netloc.rpartition("@")[2] or u for u in endpoints)
    shown = [root.name if r == "." else r for r in rel]  # a tree without a repository is named by its folder
    label = f"{', '.join(shown)} @ {hosts}"
    legacy = None
    if not chosen.is_absolute():  # an older release took a relative state folder from the current folder
        cwd = Path.cwd().resolve()
        old_key, _ = _key(paths, _repository(_folder(Path((paths or ("manifests",))[0]).resolve())) or cwd, endpoints)
        candidate = cwd / chosen / old_key
        if candidate.resolve() != (base / key).resolve():
            legacy = candidate
    return Workspace(key, label, base / key, root, legacy)


def ensure_state_dir(workspace: Workspace) -> None:
    """Create the workspace's state folder (0700), with a .gitignore in the folder that holds it."""
    base = workspace.directory.parent
    fresh = not base.exists()
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    ignore = base / ".gitignore"
    if fresh or not ignore.exists():
        try:
            fd = os.open(str(ignore), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(_GITIGNORE)
    workspace.directory.mkdir(exist_ok=True, mode=0o700)


@contextmanager
def sandbox_workspace() -> Iterator[Workspace]:
    directory = Path(tempfile.mkdtemp(prefix="reconciler-sandbox-"))
    try:
        yield Workspace("sandbox", "the in-process sandbox (this command only)", directory / "state", directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_workspace(paths: Sequence[str], settings: Settings, *, sandbox: bool) -> AbstractContextManager[Workspace]:
    """The workspace a command works in: found from `paths` and the endpoints, or, for `--sandbox`, a
    throwaway one (the in-process emulator lives for one command, and so do its batch ids)."""
    if sandbox:
        return sandbox_workspace()
    return nullcontext(workspace_for(paths, settings.orion.base_url, settings.sei.base_url, settings.workspace))
