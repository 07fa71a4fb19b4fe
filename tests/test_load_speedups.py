"""What makes loading fast must not change what loading means: memoised tag resolution, GC passes,
and workers started before the stream is read."""

from __future__ import annotations

import gc
import time

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import reconciler.manifests as manifests_pkg
from reconciler.manifests import ManifestStream, load_manifests
from reconciler.yamldoc import _BaseLoader, _Loader
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
    text = "".join(f"k{i}: {s}\n" if s else f"k{i}:\n" for i, s in enumerate(TRICKY))
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
    monkeypatch.setattr(manifests_pkg, "_spawn_is_safe", lambda: True)
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
