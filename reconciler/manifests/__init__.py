"""Manifests: files on disk → a validated ManifestSet, or a ManifestError listing every problem.

Three stages, each reporting all it finds before the next runs on what survived:
hardened YAML (loader), JSON Schema per kind (schema), then the cross-document resolution and
business rules (resolve). Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

from reconciler.errors import ConfigError, Diagnostic, ManifestError
from reconciler.escaping import visible
from reconciler.manifests.loader import Document, iter_manifest_files, load_documents
from reconciler.manifests.resolve import Resolved, resolve_all, resolve_document, rule_diagnostics
from reconciler.model import ManifestSet
from reconciler.schema import KIND_SCHEMAS, validate_document

__all__ = ["load_manifests"]

log = logging.getLogger("reconciler.manifests")

API_VERSION = "reconciler/v1"
# Parsing and schema checks are per file and CPU-bound; past this many files they are spread over
# worker processes (spawned, so a running sandbox thread is never forked). Below it, start-up costs more.
PARALLEL_THRESHOLD = 2000


def load_manifests(paths: list[str] | tuple[str, ...], *, workers: int | None = None,
                   allow_empty: bool = False) -> ManifestSet:
    """Load, check and resolve every manifest under `paths`; raise ManifestError with all problems.

    A tree that declares no resource is an error unless `allow_empty`: an empty folder planned or
    audited green would hide a wrong path, not prove that nothing drifted.
    """
    files, tree_problems = iter_manifest_files(paths)
    workers = workers or min(os.cpu_count() or 1, 8)
    results = None
    if workers > 1 and len(files) >= PARALLEL_THRESHOLD and _spawn_is_safe():
        try:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                results = [r for chunk in pool.map(_check_files, _balanced_chunks(files, workers * 4)) for r in chunk]
            results.sort(key=lambda r: r[0])  # back in file order: digests and diagnostics stay stable
        except (BrokenProcessPool, OSError) as e:  # e.g. a caller's script that cannot be re-imported
            log.debug("parallel manifest loading failed (%s); loading in this process", e)
    if results is None:
        results = _check_files(files)
    digest = hashlib.sha256()
    diags: list[Diagnostic] = list(tree_problems)
    resolved: list[Resolved] = []
    for display, file_digest, file_resolved, file_diags in results:
        digest.update(display.encode() + b"\0" + file_digest)
        resolved.extend(file_resolved)
        diags.extend(file_diags)
    registrations, batches, policies, resolve_diags = resolve_all(resolved)
    diags.extend(resolve_diags)
    if diags:
        raise ManifestError(diags)
    if not registrations and not batches and not allow_empty:
        where = ", ".join(visible(str(p)) for p in paths)
        raise ConfigError(f"{where}: no SleeveRegistration or TradeBatch found ({len(files)} manifest file"
                          f"{'s' * (len(files) != 1)}); nothing would be checked. Check the path, or pass "
                          "--allow-empty if an empty tree is intended")
    return ManifestSet(registrations, batches, digest.hexdigest(), tuple(d for _, d in files), policies)


def _balanced_chunks(files: list[tuple[Path, str]], n: int) -> list[list[tuple[Path, str]]]:
    """Largest files first, each onto the lightest chunk: one big trade batch per chunk, not all in one."""
    sized = sorted(((os.path.getsize(p), p, d) for p, d in files), key=lambda t: -t[0])
    chunks: list[list[tuple[Path, str]]] = [[] for _ in range(n)]
    loads = [0] * n
    for size, path, display in sized:
        i = loads.index(min(loads))
        chunks[i].append((path, display))
        loads[i] += size + 512  # a file's fixed cost, so thousands of tiny files also spread evenly
    return [c for c in chunks if c]


def _spawn_is_safe() -> bool:
    """Spawned workers re-import the caller's __main__; stdin or an interactive session cannot be."""
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    return bool(file) and os.path.exists(file)


def _check_files(files: list[tuple[Path, str]]) -> list[tuple[str, bytes, list[Resolved], list[Diagnostic]]]:
    """Per file: (display, sha256 of its bytes, its documents resolved as far as one file allows, diagnostics)."""
    out = []
    for path, display in files:
        diags: list[Diagnostic] = []
        typed: list[Resolved] = []
        try:
            data = path.read_bytes()
        except OSError as e:
            out.append((display, b"", [], [Diagnostic(display, 1, 1, f"cannot read file: {e.strerror}",
                                                      "check permissions")]))
            continue
        docs, file_diags = load_documents(data, display)
        diags.extend(file_diags)
        for doc in docs:
            kind = _check_header(doc, diags)
            if kind is None:
                continue
            schema_diags = validate_document(doc, kind)
            explained = {(d.line, d.col) for d in schema_diags}
            diags.extend(schema_diags)
            diags.extend(d for p, d in doc.surprises.items() if doc.pos(p) not in explained)
            if not schema_diags and not doc.value_errors:  # the loader refused none of its values
                doc.scalars = {}  # only schema messages need raw text; don't ship it between processes
                typed.append(resolve_document(kind, doc))  # surprises keep their (well-typed) value
            else:  # still report every independent error: the rules on what is well typed
                seen = {(d.line, d.col, d.message) for d in diags}
                diags.extend(d for d in rule_diagnostics(kind, doc) if (d.line, d.col, d.message) not in seen)
        out.append((display, hashlib.sha256(data).digest(), typed, diags))
    return out


def _check_header(doc: Document, diags: list[Diagnostic]) -> str | None:
    if doc.broken:
        return None
    data = doc.data
    if data is None:
        return None  # an empty document (a trailing ---) is allowed
    if not isinstance(data, dict):
        diags.append(doc.diagnostic((), "a manifest must be a mapping with apiVersion, kind, metadata and spec",
                                    "see manifests/ for examples"))
        return None
    if data.get("apiVersion") != API_VERSION:
        diags.append(doc.diagnostic(("apiVersion",), f"apiVersion must be {API_VERSION}, got {data.get('apiVersion')!r}",
                                    f"set apiVersion: {API_VERSION}"))
        return None
    kind = data.get("kind")
    if kind not in KIND_SCHEMAS:
        diags.append(doc.diagnostic(("kind",), f"unknown kind {kind!r}", f"use one of: {', '.join(KIND_SCHEMAS)}"))
        return None
    return kind
