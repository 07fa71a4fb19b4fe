"""What makes loading fast must not change what loading means: memoised tag resolution, GC passes,
workers started before the stream is read, and the lean builder with positions looked up on demand."""

from __future__ import annotations

import gc
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import reconciler.manifests as manifests_pkg
from reconciler.manifests import ManifestStream, load_manifests
from reconciler.yamldoc import _BaseLoader, _Loader, load_documents
from tests.benchmarks.estate import write_estate

TRICKY = ["on", "yes", "No", "0123", "0x1F", "1e3", "1_000", "~", "null", "", "2026-01-01", ".nan", "-.inf",
          "30", "30.0", "Normal sleeve", "true", "True", "TRUE", "<<", "=", "12:30:00"]


def _tags(loader_cls, text: str) -> list[str]:
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    return [v.tag for _, v in node.value]


def test_memoised_resolution_gives_pyyamls_tags_on_the_tricky_scalars():
    plain = [f"{s}" for s in TRICKY]
    quoted = [f'"{s}"' for s in TRICKY] + [f"'{s}'" for s in TRICKY] + ["[on, 1]", "{a: on}", "|\n  on"]
    text = "".join(f"k{i}: {s}\n" if s else f"k{i}:\n" for i, s in enumerate(plain + quoted))
    for _ in range(2):   # cold, then from the memo
        assert _tags(_Loader, text) == _tags(_BaseLoader, text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789.-+eExXoO_:~ntruefalsyNTRUEFALSY", max_size=12), min_size=1, max_size=8))
def test_memoised_resolution_agrees_with_pyyaml_on_random_plain_scalars(values):
    text = "".join(f"k{i}: {v}\n" for i, v in enumerate(values))   # plain scalars, as a manifest writes them
    try:
        expected = _tags(_BaseLoader, text)
    except yaml.YAMLError:
        return
    assert _tags(_Loader, text) == expected


def test_gc_thresholds_are_restored_after_a_load(tmp_path):
    write_estate(tmp_path / "m", 3, 4)
    before = gc.get_threshold()
    load_manifests([str(tmp_path / "m")])
    assert gc.get_threshold() == before


def test_a_started_stream_closed_before_reading_stops_at_once_and_still_loads_in_process(tmp_path, monkeypatch):
    write_estate(tmp_path / "m", 400, 200)
    monkeypatch.setattr(manifests_pkg, "PARALLEL_THRESHOLD", 100)
    monkeypatch.setattr(manifests_pkg, "_start_method", lambda: "spawn")   # a test process runs threads: never fork it
    reference = load_manifests([str(tmp_path / "m")], workers=1)

    stream = ManifestStream([str(tmp_path / "m")], workers=2).start()
    assert stream.large and stream._pool is not None
    t = time.monotonic()
    stream.close()                                   # as after a configuration error: no waiting for workers
    assert time.monotonic() - t < 2 and stream._pool is None
    regs = [r for r in stream if hasattr(r, "registration_id")]
    assert [r.address for r in regs] == [r.address for r in reference.registrations]

    started = ManifestStream([str(tmp_path / "m")], workers=2).start()   # started early, read later
    assert [r.address for r in started if hasattr(r, "registration_id")] == [r.address for r in reference.registrations]
    assert started.digest == reference.digest


_FORKED = """
import threading, sys
import reconciler.manifests as m
m.PARALLEL_THRESHOLD = 100
assert threading.active_count() == 1 and m._start_method() == "fork"
stream = m.ManifestStream([sys.argv[1]], workers=2).start()
assert stream._pool._mp_context.get_start_method() == "fork"
resources = list(stream)
reference = m.load_manifests([sys.argv[1]], workers=1)
assert [r.address for r in resources if hasattr(r, "registration_id")] == [r.address for r in reference.registrations]
assert [b.batch_id for b in resources if hasattr(b, "batch_id")] == [b.batch_id for b in reference.batches]
assert stream.digest == reference.digest
print("forked", len(resources))
"""


def test_a_single_threaded_process_forks_its_workers_and_loads_the_same_tree(tmp_path):
    """The CLI starts the stream before any thread: its workers fork, with the parser already imported."""
    write_estate(tmp_path / "m", 300, 200)
    run = subprocess.run([sys.executable, "-c", _FORKED, str(tmp_path / "m")], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["forked", "304"]


def test_a_process_with_another_thread_running_never_forks(monkeypatch):
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert manifests_pkg._start_method() != "fork"
    finally:
        stop.set()


# --- the lean builder (yamldoc/lean.py) against the full one (yamldoc/builder.py) ---

REPO = Path(__file__).resolve().parent.parent
UNUSUAL = [
    "a: on\n", "a: 0123\n", "a: 1\na: 2\n", "a: 2026-01-01\n", "a: .nan\n", "<<: {a: 1}\n",
    "? [a]\n: 1\n", "name: ab\u200bc\n", "a: caf\u00e9\n", "a: |\n  two\n  lines\n", "a: \"tab\\there\"\n",
    "a: !!set {x}\n", "a: yes\n", "\"k\\x01\": 1\n", "a: 1.0e+400\n",
]
CLEAN = ["a: 1\nb: [x, y, {c: null, d: true}]\n", "- 1\n- 2.5\n- -3\n", "plain\n", "{a: {b: {c: [[], {}]}}}\n",
         "a: 'quoted 0123'\nb: \"on\"\n", "a: !!str 5\n", "a: 1e400\n"]


def _both(text: str):
    """(lean-or-fallback result, the full builder's result) for the same bytes."""
    return load_documents(text.encode(), "f.yaml"), load_documents(text.encode(), "f.yaml", spans=True)


def _probe_paths(full_doc):
    """Every recorded path, plus paths that are missing below them (answered by their nearest ancestor)."""
    paths = list(full_doc.positions)
    return paths + [p + ("missing",) for p in paths] + [p + (99,) for p in paths] + [("spec", 0, "x")]


def _assert_same(text: str) -> None:
    (lean_docs, lean_diags), (full_docs, full_diags) = _both(text)
    assert lean_diags == full_diags
    assert repr([d.data for d in lean_docs]) == repr([d.data for d in full_docs])   # repr: NaN, 1 vs 1.0 vs True
    for lean, full in zip(lean_docs, full_docs):
        assert (lean.broken, lean.value_errors, lean.surprises) == (full.broken, full.value_errors, full.surprises)
        for path in _probe_paths(full):
            assert lean.pos(path) == full.pos(path), path
            assert lean.scalar(path) == full.scalar(path), path
        shipped = pickle.loads(pickle.dumps(lean))        # as a template's document travels to the main process
        assert shipped.node is None and shipped.positions == full.positions and repr(shipped.data) == repr(full.data)


def test_lean_documents_equal_fully_built_ones_on_the_examples_and_an_estate(tmp_path):
    write_estate(tmp_path / "m", 20, 60)
    files = sorted(REPO.joinpath("manifests").rglob("*.yaml")) + sorted((tmp_path / "m").rglob("*.yaml"))
    assert len(files) > 20
    for path in files:
        _assert_same(path.read_text())
    docs, _ = load_documents(files[-1].read_bytes(), "f.yaml")
    assert all(d.node is not None for d in docs)         # the examples take the lean path


@pytest.mark.parametrize("text", UNUSUAL + CLEAN)
def test_unusual_documents_are_built_by_the_full_builder_with_the_same_diagnostics(text):
    _assert_same(text)
    docs, _ = load_documents(text.encode(), "f.yaml")
    assert all((d.node is None) == (text in UNUSUAL) for d in docs)


_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, width=32),
                    st.sampled_from(TRICKY), st.text(max_size=8))
_VALUE = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(alphabet="abcXYZ_ -", min_size=1, max_size=5), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_VALUE, st.booleans())
def test_lean_and_full_builders_agree_on_random_documents(value, flow):
    _assert_same(yaml.safe_dump({"spec": value}, default_flow_style=flow, allow_unicode=True))
