"""A partial plan's scope: what a change since a Git revision can affect (`plan --changed-since REF`).

reconciler knows, per resource, which file declared it and which template it takes, so a pull request
that touches ten files need not re-read 100,000 registrations. The scope is, in the tree as it is now:

- every manifest file changed since REF (added, modified, renamed, or untracked): its resources;
- every file that takes a template changed since REF (by its old or its new name): its registrations;
- every template and policy file, read (never planned) so the files above resolve and are judged
  exactly as in a full plan.

A partial plan over those files is the full plan restricted to their resources, by construction: the
same stream, builder and diff run on them (tests/plan/test_changes.py checks it over random edits).
Resources that a changed or deleted file declared at REF and that no file in scope declares now are
"no longer managed here": shown, and, as in a full plan, nothing is removed at the vendor.

What a partial plan does not do: read live state outside the scope (drift elsewhere is not shown), or
check rules that span the tree (a registration id declared twice, once in an unchanged file) beyond
the files it reads; `validate` over the whole tree does, and the pull-request job runs it.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError
from reconciler.escaping import visible
from reconciler.manifests.tree import declares_kind, iter_manifest_files
from reconciler.model import instruction_address, registration_address
from reconciler.yamldoc import load_documents

__all__ = ["Scope", "changed_scope", "declared_in"]


@dataclass(frozen=True)
class Scope:
    since: str  # the revision as given
    base: str  # the commit it named when the plan was made (a saved plan's apply uses this one)
    changed: tuple[str, ...]  # manifest files changed since `base` (display names)
    templates: tuple[str, ...]  # template names changed since `base` (old and new)
    users: tuple[str, ...]  # files read because they take one of those templates
    gone: tuple[tuple[str, str], ...]  # (address, file at base) that no file in scope declares now
    files: tuple[tuple[Path, str], ...]  # what the partial plan reads, templates first

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "base": self.base,
            "changed_files": list(self.changed),
            "changed_templates": list(self.templates),
            "template_users": len(self.users),
            "no_longer_managed": [{"address": a, "file": f} for a, f in self.gone],
        }


def _git(root: Path, *args: str) -> bytes:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=60, check=True).stdout
    except subprocess.CalledProcessError as e:
        raise ConfigError(
            f"git {' '.join(args[:2])} failed in {root}: {visible(e.stderr.decode(errors='replace').strip(), 300)}"
        ) from e
    except (OSError, subprocess.SubprocessError) as e:
        raise ConfigError(f"--changed-since needs git, and the manifests in a Git repository ({e})") from e


def declared_in(data: bytes, display: str) -> tuple[set[str], set[str], set[str]]:
    """(addresses of resources, names of templates, names of templates taken) a file's bytes declare;
    a file that does not parse declares nothing here (its checker reports it, if it is in scope)."""
    docs, _ = load_documents(data, display)
    addresses: set[str] = set()
    templates: set[str] = set()
    taken: set[str] = set()
    for doc in docs:
        d: dict[str, Any] = doc.data if isinstance(doc.data, dict) else {}
        kind = d.get("kind")
        meta: dict[str, Any] = d["metadata"] if isinstance(d.get("metadata"), dict) else {}
        spec: dict[str, Any] = d["spec"] if isinstance(d.get("spec"), dict) else {}
        name = meta.get("name")
        if kind == "SleeveRegistration" and isinstance(name, str):
            addresses.add(registration_address(name))
            if isinstance(spec.get("template"), str):
                taken.add(spec["template"])
        elif kind == "SleeveTemplate" and isinstance(name, str):
            templates.add(name)
        elif kind == "TradeBatch":
            for i in spec.get("instructions") or []:
                if isinstance(i, dict) and isinstance(i.get("tradeTicketId"), int):
                    addresses.add(instruction_address(i["tradeTicketId"]))
    return addresses, templates, taken


class _FileIndex:
    """The tree's files by absolute path, for matching Git's paths: by `abspath` (string work), and only
    for a path not found so, by resolving symbolic links (104,000 `resolve()` calls took 3 s)."""

    def __init__(self, files: list[tuple[Path, str]]) -> None:
        self.files = files
        self._plain = {os.path.abspath(p): (p, d) for p, d in files}
        self._resolved: dict[Path, tuple[Path, str]] | None = None

    def get(self, path: Path) -> tuple[Path, str] | None:
        found = self._plain.get(str(path))
        if found is None:
            if self._resolved is None:
                self._resolved = {p.resolve(): (p, d) for p, d in self.files}
            found = self._resolved.get(path.resolve())
        return found


def _takes(data: bytes, names: set[str]) -> bool:
    """Whether a file may take one of `names` as its template (a superset is safe: it is read, and
    planned exactly as a full plan would)."""
    if b"template" not in data:
        return False
    alternation = b"|".join(re.escape(n.encode()) for n in sorted(names))
    return re.search(rb"template:[ \t]*[\"']?(?:" + alternation + rb")[\"']?(?=[\s,}#]|$)", data) is not None


def changed_scope(paths: Sequence[str], since: str) -> Scope | None:
    """The scope of a plan of the manifests under `paths` changed since `since` (a revision: a branch, a
    tag, a commit), uncommitted and untracked changes included. None when a change can reach every
    resource (reconciler.yaml: ignore rules, batch size), so only a full plan will do."""
    first = Path((tuple(paths) or ("manifests",))[0]).resolve()
    root = Path(_git(first if first.is_dir() else first.parent, "rev-parse", "--show-toplevel").decode().strip())
    try:
        base = _git(root, "rev-parse", "--verify", "--quiet", f"{since}^{{commit}}").decode().strip()
    except ConfigError:
        base = ""
    if not base:
        raise ConfigError(
            f"--changed-since {visible(since, 200)}: no such revision in {root} (in CI, check out with fetch-depth: 0 "
            "so the pull request's base is there)"
        )
    config = (":(glob)**/reconciler.yaml", ":(glob)**/reconciler.yml")
    configs = _git(root, "diff", "--name-only", "-z", base, "--", *config)
    configs += _git(root, "ls-files", "--others", "--exclude-standard", "-z", "--", *config)
    if configs.strip(b"\0"):
        return None
    files, problems = iter_manifest_files(tuple(paths), templates_first=False)  # each file is read below
    if problems:  # a partial plan never reads a broken tree in part: the full plan reports it
        from reconciler.errors import ManifestError

        raise ManifestError(problems)
    by_path = _FileIndex(files)
    targets = [str(Path(p).resolve()) for p in paths]
    status = _git(root, "diff", "--name-status", "-z", "-M", base, "--", *targets).split(b"\0")
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z", "--", *targets).split(b"\0")
    now: set[Path] = set()  # changed files as they are now
    before: list[str] = []  # changed files as they were at base (git paths)
    i = 0
    while i < len(status) - 1:
        code = status[i].decode()
        if code.startswith(("R", "C")):  # renamed (the old path is gone) or copied: two paths follow
            if code.startswith("R"):
                before.append(status[i + 1].decode())
            now.add((root / status[i + 2].decode()).resolve())
            i += 3
            continue
        changed_path = status[i + 1].decode()
        if code != "A":
            before.append(changed_path)
        if code != "D":
            now.add((root / changed_path).resolve())
        i += 2
    now |= {(root / u.decode()).resolve() for u in untracked if u}
    manifests_now = (p for p in now if p.suffix in (".yaml", ".yml"))  # a README beside them is no manifest
    changed = sorted(filter(None, (by_path.get(p) for p in manifests_now)), key=lambda f: f[1])
    old_addresses: dict[str, str] = {}
    templates: set[str] = set()
    for git_path in before:
        if not git_path.endswith((".yaml", ".yml")):
            continue
        try:
            data = _git(root, "show", f"{base}:{git_path}")
        except ConfigError:
            continue
        addresses, names, _ = declared_in(data, git_path)
        templates |= names
        old_addresses.update({a: git_path for a in addresses})
    declared_now: set[str] = set()
    for path, display in changed:
        addresses, names, _ = declared_in(path.read_bytes(), display)
        templates |= names
        declared_now |= addresses
    chosen = {p for p, _ in changed}
    users: list[str] = []
    read: list[tuple[Path, str]] = []
    templates_read: list[tuple[Path, str]] = []  # template files first, as the stream expects (manifests/tree.py)
    for path, display in files:
        data = path.read_bytes()
        if declares_kind(data, "SleeveTemplate"):
            templates_read.append((path, display))
        elif path in chosen or declares_kind(data, "Policy"):
            read.append((path, display))
        elif templates and _takes(data, templates):
            read.append((path, display))
            users.append(display)
            declared_now |= declared_in(data, display)[0]
    read = templates_read + read
    gone = tuple(sorted((a, f) for a, f in old_addresses.items() if a not in declared_now))
    return Scope(since, base, tuple(d for _, d in changed), tuple(sorted(templates)), tuple(users), gone, tuple(read))
