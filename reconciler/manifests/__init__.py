"""Manifests: files on disk → a validated ManifestSet, or a ManifestError listing every problem.

Three stages, each reporting all it finds before the next runs on what survived:
hardened YAML (loader), JSON Schema per kind (schema), then the cross-document resolution and
business rules (resolve). Nothing here touches the network.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import pickle
import sys
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from itertools import islice
from multiprocessing import get_context
from pathlib import Path

from reconciler.errors import ConfigError, Diagnostic, ManifestError
from reconciler.escaping import visible
from reconciler.manifests.cache import CheckCache, cache_key
from reconciler.manifests.resolve import Resolved, resolve_document, rule_diagnostics
from reconciler.manifests.schema import KIND_SCHEMAS, validate_document
from reconciler.manifests.tree import iter_manifest_files
from reconciler.manifests.tree_stage import TreeResolver
from reconciler.model import DesiredBatch, DesiredRegistration, ManifestSet
from reconciler.yamldoc import Document, load_documents

__all__ = ["ManifestStream", "fewer_gc_passes", "load_manifests"]

log = logging.getLogger("reconciler.manifests")

API_VERSION = "reconciler/v1"
# Parsing and schema checks are per file and CPU-bound; past this many files they are spread over
# worker processes (see _start_method). Below it, start-up costs more.
PARALLEL_THRESHOLD = 2000
# Loading builds millions of small, acyclic objects (dicts, tuples, Sources) that live until the plan
# is made; CPython's default cyclic GC (a pass every 700 allocations) keeps re-walking them for
# nothing. Fewer passes while a tree loads: validate on 30,000 files used 15% less CPU (24.3 → 20.6 s).
GC_THRESHOLDS = (50_000, 20, 1_000)
# Chunks (~400 files each) handed to each worker ahead of the caller: enough that a worker never waits
# for its next chunk, few enough that checked results waiting for a slower caller (a plan diffing and
# reading as it goes) stay a few MiB. Executor.map would hand out every chunk at once, and at 100,000
# files the waiting results would hold the whole tree.
CHUNKS_AHEAD = 3


def load_manifests(
    paths: list[str] | tuple[str, ...], *, workers: int | None = None, allow_empty: bool = False
) -> ManifestSet:
    """Load, check and resolve every manifest under `paths`; raise ManifestError with all problems.

    A tree that declares no resource is an error unless `allow_empty`: an empty folder planned or
    audited green would hide a wrong path, not prove that nothing drifted.
    """
    stream = ManifestStream(paths, workers=workers, allow_empty=allow_empty)
    registrations: list[DesiredRegistration] = []
    batches: list[DesiredBatch] = []
    for resource in stream:
        if isinstance(resource, DesiredRegistration):
            registrations.append(resource)
        else:
            batches.append(resource)
    return ManifestSet(tuple(registrations), tuple(batches), stream.digest, stream.files, stream.policies)


class ManifestStream:
    """The manifests as a stream: iterating yields each registration and trade batch as soon as its
    file is checked (files in order; checked in worker processes for large trees), so a plan can read
    and diff the first chunks while later files are still being parsed.

    The iteration raises ManifestError (every problem in the tree) or ConfigError (an empty tree)
    *after* the last file: whoever consumed the stream must then discard all it was given. Only when
    the iteration ends normally are `digest`, `files`, `policies` and the counts set.
    """

    def __init__(
        self,
        paths: list[str] | tuple[str, ...],
        *,
        workers: int | None = None,
        allow_empty: bool = False,
        files: list[tuple[Path, str]] | None = None,
        cache: str | None = None,
    ) -> None:
        """`files`: read only these (path, display) of the tree, templates first (a partial plan's
        scope, plan/changes.py); the digest then covers them alone. `cache`: a folder of checked files
        (manifests/cache.py) that are not parsed again while their bytes are unchanged."""
        self.paths = tuple(paths)
        self.cache = cache
        self.allow_empty = allow_empty
        self.workers = workers or min(os.cpu_count() or 1, 8)
        self._files, self._tree_problems = (files, []) if files is not None else iter_manifest_files(paths)
        self.files: tuple[str, ...] = tuple(d for _, d in self._files)
        self.digest = ""
        self.policies: tuple = ()
        self._pool: ProcessPoolExecutor | None = None
        self._chunks: Iterator[list[tuple[Path, str]]] = iter(())
        self._pending: deque[Future] | None = None  # chunks handed to the workers, in file order
        self.registrations = self.batches = self.instructions = 0

    @property
    def large(self) -> bool:
        """Checked by worker processes (and worth overlapping with live reads)."""
        return self._pool is not None or (self._worth_workers() and _start_method() is not None)

    def _worth_workers(self) -> bool:
        return self.workers > 1 and len(self._files) >= PARALLEL_THRESHOLD

    def __iter__(self) -> Iterator[DesiredRegistration | DesiredBatch]:
        with fewer_gc_passes():
            yield from self._iterate()

    def _iterate(self) -> Iterator[DesiredRegistration | DesiredBatch]:
        digest = hashlib.sha256()
        diags: list[Diagnostic] = list(self._tree_problems)
        tree = TreeResolver()
        for display, file_digest, file_resolved, file_diags in self._checked_files():
            digest.update(display.encode() + b"\0" + file_digest)
            diags.extend(file_diags)
            for resource in tree.add(file_resolved):
                self._count(resource)
                yield resource
        late, self.policies, resolve_diags = tree.finish()
        diags.extend(resolve_diags)
        if diags:
            raise ManifestError(diags)
        for reg in late:
            self._count(reg)
        if not self.registrations and not self.batches and not self.allow_empty:
            where = ", ".join(visible(str(p)) for p in self.paths)
            n = len(self._files)
            raise ConfigError(
                f"{where}: no SleeveRegistration or TradeBatch found ({n} manifest file"
                f"{'s' * (n != 1)}); nothing would be checked. Check the path, or pass "
                "--allow-empty if an empty tree is intended"
            )
        self.digest = digest.hexdigest()
        yield from late

    def _count(self, resource) -> None:
        if isinstance(resource, DesiredRegistration):
            self.registrations += 1
        else:
            self.batches += 1
            self.instructions += len(resource.instructions)

    def start(self) -> ManifestStream:
        """Begin checking a large tree in worker processes now, while the caller sets up (settings,
        session, journal), and before the caller starts any thread (so the workers can be forked).
        Nothing but the files is read. Call `close()` if the stream may not be iterated (an error first)."""
        method = _start_method()
        if self._pool is None and method is not None and self._worth_workers():
            try:
                self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context(method), initializer=_worker_gc)
                self._chunks = iter(_chunks_in_order(self._files, max(self.workers * 4, len(self._files) // 400)))
                self._pending = deque(
                    self._pool.submit(_check_files_cached, chunk, self.cache)
                    for chunk in islice(self._chunks, self.workers * CHUNKS_AHEAD)
                )
            except (BrokenProcessPool, OSError) as e:
                log.debug("parallel manifest loading could not start (%s); files are checked in this process", e)
                self.close()
        return self

    def close(self) -> None:
        """Stop the workers (pending chunks are cancelled); the stream can no longer be iterated in parallel."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._pending = None, None

    def _checked_files(self):
        """Per-file results in file order, as soon as each contiguous chunk of files is done; a chunk
        is handed to the workers each time one is taken, so results wait for a slow caller in bounded number."""
        done = 0
        self.start()
        if self._pending is not None:
            pool = self._pool
            assert pool is not None  # started with workers: the pool exists while there is work pending
            try:
                while self._pending:
                    blobs = self._pending.popleft().result()
                    self._pending.extend(
                        pool.submit(_check_files_cached, chunk, self.cache) for chunk in islice(self._chunks, 1)
                    )
                    for blob in blobs:
                        result = _loaded(blob, self._files[done])
                        done += 1
                        yield result
                return
            except (BrokenProcessPool, OSError) as e:  # e.g. a caller's script that cannot be re-imported
                log.debug("parallel manifest loading failed (%s); the rest is checked in this process", e)
            finally:
                self.close()
        rest = self._files[done:]
        if self.cache is None:
            yield from _check_files(rest)
            return
        for blob, file in zip(_check_files_cached(rest, self.cache), rest):
            yield _loaded(blob, file)


def _chunks_in_order(files: list[tuple[Path, str]], n: int) -> list[list[tuple[Path, str]]]:
    """`files` cut into about `n` contiguous runs of similar size (bytes plus a fixed cost per file),
    so results stream back in file order while many small chunks keep every worker busy."""
    sizes = [os.path.getsize(p) + 512 for p, _ in files]
    target = max(1, sum(sizes) // max(1, n))
    chunks: list[list[tuple[Path, str]]] = [[]]
    load = 0
    for f, size in zip(files, sizes):
        if load >= target and chunks[-1]:
            chunks.append([])
            load = 0
        chunks[-1].append(f)
        load += size
    return [c for c in chunks if c]


@contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """GC_THRESHOLDS for the duration (a load, a streamed plan), then the thresholds as they were."""
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _worker_gc() -> None:
    """In a parsing worker, which lives only for the load."""
    gc.set_threshold(*GC_THRESHOLDS)


def _start_method() -> str | None:
    """How parsing workers can start in this process, or None if they cannot.

    "fork" where it is safe: on Linux, while this process runs a single thread (a fork copies no other
    thread, and a lock another thread held would stay locked in the child; the in-process sandbox is
    such a thread). A forked worker starts at once with the parser already imported; a spawned one
    first spends ~0.3 s of CPU importing it again, which was most of `plan`'s idle first second.
    "spawn" otherwise: it re-imports the caller's __main__, so stdin or an interactive session cannot."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    return "spawn" if file and os.path.exists(file) else None


def _check_files(files: list[tuple[Path, str]]) -> list[tuple[str, bytes, list[Resolved], list[Diagnostic]]]:
    """Per file: (display, sha256 of its bytes, its documents resolved as far as one file allows, diagnostics)."""
    out: list[tuple[str, bytes, list[Resolved], list[Diagnostic]]] = []
    for path, display in files:
        try:
            data = path.read_bytes()
        except OSError as e:
            out.append(
                (display, b"", [], [Diagnostic(display, 1, 1, f"cannot read file: {e.strerror}", "check permissions")])
            )
            continue
        out.append(_check_data(display, data))
    return out


def _check_data(display: str, data: bytes) -> tuple[str, bytes, list[Resolved], list[Diagnostic]]:
    """One file's bytes checked: parsed, each document's header and schema, the rules one file allows."""
    diags: list[Diagnostic] = []
    typed: list[Resolved] = []
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
            typed.append(resolve_document(kind, doc))  # surprises keep their (well-typed) value
        else:  # still report every independent error: the rules on what is well typed
            seen = {(d.line, d.col, d.message) for d in diags}
            diags.extend(d for d in rule_diagnostics(kind, doc) if (d.line, d.col, d.message) not in seen)
    return (display, hashlib.sha256(data).digest(), typed, diags)


def _check_files_cached(files: list[tuple[Path, str]], cache: str | None) -> list[bytes]:
    """`_check_files` through the cache (`cache`: its folder, or None): each file's result pickled,
    taken from the cache while the file's key is there, checked and stored when not. Pickles cross
    the process boundary as they are, so the main process unpickles each result once."""
    if not cache:
        return [pickle.dumps(result, pickle.HIGHEST_PROTOCOL) for result in _check_files(files)]
    store = CheckCache(cache)
    try:
        keyed: list[tuple[tuple[Path, str], bytes | None, str | None]] = []
        for path, display in files:
            try:
                data = path.read_bytes()  # read once: for the key, and for the check on a miss
                keyed.append(((path, display), data, cache_key(display, data)))
            except OSError:
                keyed.append(((path, display), None, None))  # its check reports why it cannot be read
        hits = store.get_many([k for _, _, k in keyed if k is not None])
        out: list[bytes] = []
        new: list[tuple[str, bytes]] = []
        for file, content, key in keyed:
            blob = hits.get(key) if key is not None else None
            if blob is None:
                result = _check_data(file[1], content) if content is not None else _check_files([file])[0]
                blob = pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
                if key is not None:
                    new.append((key, blob))
            out.append(blob)
        if new:
            store.put_many(new)
        return out
    finally:
        store.close()


def _loaded(blob: bytes, file: tuple[Path, str]) -> tuple[str, bytes, list[Resolved], list[Diagnostic]]:
    """A cached result, or the file checked again when the entry does not load (damaged, or written by
    something else): a cache is never a reason to fail."""
    try:
        result = pickle.loads(blob)
        if isinstance(result, tuple) and len(result) == 4 and result[0] == file[1]:
            return result
    except Exception:  # any unpickling failure: recompute
        pass
    log.debug("a cached check of %s did not load; checking it again", file[1])
    return _check_files([file])[0]


def _check_header(doc: Document, diags: list[Diagnostic]) -> str | None:
    if doc.broken:
        return None
    data = doc.data
    if data is None:
        return None  # an empty document (a trailing ---) is allowed
    if not isinstance(data, dict):
        diags.append(
            doc.diagnostic(
                (),
                "a manifest must be a mapping with apiVersion, kind, metadata and spec",
                "see manifests/ for examples",
            )
        )
        return None
    if data.get("apiVersion") != API_VERSION:
        diags.append(
            doc.diagnostic(
                ("apiVersion",),
                f"apiVersion must be {API_VERSION}, got {data.get('apiVersion')!r}",
                f"set apiVersion: {API_VERSION}",
            )
        )
        return None
    kind = data.get("kind")
    if kind not in KIND_SCHEMAS:
        diags.append(doc.diagnostic(("kind",), f"unknown kind {kind!r}", f"use one of: {', '.join(KIND_SCHEMAS)}"))
        return None
    return kind
