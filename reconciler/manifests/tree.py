"""The manifest tree: which files under the given paths are manifests, and what is wrong with the tree.

Kept apart from the YAML reader (yamldoc.py): walking folders is about symlinks, FIFOs and display
names; reading one file is about YAML.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from reconciler.errors import ConfigError, Diagnostic
from reconciler.escaping import visible

__all__ = ["declares_kind", "iter_manifest_files"]


def iter_manifest_files(
    paths: list[str] | tuple[str, ...], *, templates_first: bool = True
) -> tuple[list[tuple[Path, str]], list[Diagnostic]]:
    """Every *.yaml / *.yml under `paths`, sorted (template files first), as (path, display name), and
    the tree's problems.

    Hidden folders (.git, .reconciler) are skipped, and reconciler.yaml is configuration, not a manifest.
    Symbolic links are followed while they stay inside the folder given (a loop, or a link leaving it,
    is an error: a tree is never planned in part without saying so). A FIFO, socket or device is an
    error too, found with stat() and never opened, so it cannot block. Display names are relative to
    the working directory when possible, as editors and CI logs expect. `templates_first=False`: in
    name order only, for a caller that reads every file itself anyway (plan/changes.py).
    """
    found: dict[str, Path] = {}
    problems: list[Diagnostic] = []
    for raw in paths:
        p = Path(raw)
        try:
            st = p.stat()
        except OSError as e:
            what = "a broken symbolic link" if os.path.islink(p) else "no such file or directory"
            raise ConfigError(f"{visible(raw)}: {what} (give a manifest file or folder)") from e
        if stat.S_ISREG(st.st_mode):
            found[_display(p)] = p
        elif stat.S_ISDIR(st.st_mode):
            _walk(p, found, problems)
        else:
            raise ConfigError(
                f"{visible(raw)}: not a regular file or folder (a FIFO, socket or device); "
                "give a manifest file or folder"
            )
    files = [(path, display) for display, path in sorted(found.items())]
    return (_templates_first(files) if templates_first else files), problems


# `kind: SleeveTemplate` at the start of a line (a document's top-level key), quoted or not
_TEMPLATE_KIND = re.compile(rb"^kind:[ \t]*[\"']?SleeveTemplate\b", re.MULTILINE)


def declares_kind(data: bytes, kind: str) -> bool:
    """Whether a file's bytes declare a document of `kind` (`kind: X` at the start of a line): a cheap
    look, no parse. Used to order templates first, and to give a partial plan every template and policy."""
    if kind == "SleeveTemplate":
        return b"SleeveTemplate" in data and _TEMPLATE_KIND.search(data) is not None
    return kind.encode() in data and re.search(rb"^kind:[ \t]*[\"']?" + kind.encode() + rb"\b", data, re.M) is not None


def _templates_first(files: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Files that declare a SleeveTemplate first, the rest after, each group in name order.

    Why: a registration that names a template can only be resolved once the template is known. In the
    usual layout (registrations/, then templates/) every such registration would wait for the end of the
    tree: at 100,000 registrations that is every parsed document held at once, and every live read
    pushed after the parse. One cheap look at each file's bytes (a substring test first) moves the few
    template files ahead. A file that cannot be read stays where it is; its reader reports it.
    """
    first: list[tuple[Path, str]] = []
    rest: list[tuple[Path, str]] = []
    for path, display in files:
        try:
            data = path.read_bytes()
        except OSError:
            rest.append((path, display))
            continue
        (first if declares_kind(data, "SleeveTemplate") else rest).append((path, display))
    return first + rest if first else files


def _walk(top: Path, found: dict[str, Path], problems: list[Diagnostic]) -> None:
    root = top.resolve()
    top_display = _display(top)
    seen: dict[tuple[int, int], str] = {}
    for folder, dirs, names in os.walk(top, followlinks=True):
        st = os.stat(folder)
        here = _place(top_display, top, folder)  # the folder as shown, before escaping: its files' names join it
        first = seen.get((st.st_dev, st.st_ino))
        if first is not None:  # a symlink loop, or a second name for a folder: read it once, and say so
            problems.append(
                Diagnostic(
                    visible(here),
                    1,
                    1,
                    f"this folder was already read as {first} (a symbolic link loop or alias); it was not read again",
                    "remove the link, or link to a folder the tree does not already hold",
                )
            )
            dirs[:] = []
            continue
        seen[(st.st_dev, st.st_ino)] = visible(here)
        kept = []
        for d in sorted(dirs):
            if d.startswith("."):
                continue
            full = Path(folder, d)
            if full.is_symlink() and not _inside(full.resolve(), root):
                problems.append(
                    Diagnostic(
                        _shown(top_display, top, full),
                        1,
                        1,
                        "a symbolic link to a folder outside the manifests tree; it is not read",
                        "move the manifests into the tree",
                    )
                )
                continue
            kept.append(d)
        dirs[:] = kept
        for name in names:
            if not name.endswith((".yaml", ".yml")) or name == "reconciler.yaml" or name.startswith("."):
                continue
            full = Path(folder, name)
            display = visible(os.path.normpath(os.path.join(here, name)))  # _shown, without a relpath per file
            try:
                mode = os.lstat(full).st_mode
                link = stat.S_ISLNK(mode)
                if link:  # a plain file takes one call
                    mode = os.stat(full).st_mode
            except OSError:
                problems.append(Diagnostic(display, 1, 1, "a broken symbolic link", "remove it or fix its target"))
                continue
            if not stat.S_ISREG(mode):
                problems.append(
                    Diagnostic(
                        display,
                        1,
                        1,
                        "not a regular file (a FIFO, socket or device)",
                        "remove it from the manifests tree",
                    )
                )
                continue
            if link and not _inside(full.resolve(), root):
                problems.append(
                    Diagnostic(
                        display,
                        1,
                        1,
                        "a symbolic link to a file outside the manifests tree; it is not read",
                        "copy the file into the tree",
                    )
                )
                continue
            found[display] = full


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _shown(top_display: str, top: Path, path: Path | str) -> str:
    return visible(_place(top_display, top, path))


def _place(top_display: str, top: Path, path: Path | str) -> str:
    """`path` named from the given top's display name, as CI logs and editors show it (not escaped)."""
    return os.path.normpath(os.path.join(top_display, os.path.relpath(path, top)))


def _display(p: Path) -> str:
    try:
        return visible(str(p.resolve().relative_to(Path.cwd().resolve())))
    except ValueError:
        return visible(str(p.resolve()))
