"""What makes loading fast must not change what loading means: memoised tag resolution, GC passes,
workers started before the stream is read, and the lean builder with positions looked up on demand."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time

import reconciler.manifests as manifests_pkg
from reconciler.manifests import ManifestStream, load_manifests

from ..benchmarks.estate import write_estate
from ..helpers.processes import ROOT as REPO


def test_gc_thresholds_are_restored_after_a_load(tmp_path):
    write_estate(tmp_path / "m", 3, 4)
    before = gc.get_threshold()
    load_manifests([str(tmp_path / "m")])
    assert gc.get_threshold() == before


def test_a_started_stream_closed_before_reading_stops_at_once_and_still_loads_in_process(tmp_path, monkeypatch):
    write_estate(tmp_path / "m", 400, 200)
    monkeypatch.setattr(manifests_pkg, "PARALLEL_THRESHOLD", 100)
    monkeypatch.setattr(manifests_pkg, "_start_method", lambda: "spawn")  # a test process runs threads: never fork it
    reference = load_manifests([str(tmp_path / "m")], workers=1)

    stream = ManifestStream([str(tmp_path / "m")], workers=2).start()
    assert stream.large and stream._pool is not None
    t = time.monotonic()
    stream.close()  # as after a configuration error: no waiting for workers
    assert time.monotonic() - t < 2 and stream._pool is None
    regs = [r for r in stream if hasattr(r, "registration_id")]
    assert [r.address for r in regs] == [r.address for r in reference.registrations]

    started = ManifestStream([str(tmp_path / "m")], workers=2).start()  # started early, read later
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
    run = subprocess.run(
        [sys.executable, "-c", _FORKED, str(tmp_path / "m")], capture_output=True, text=True, timeout=120, cwd=REPO
    )
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


def test_template_files_come_first_so_no_registration_waits_for_the_end_of_the_tree(tmp_path):
    """registrations/ sorts before templates/: without template files first, every registration naming a
    template was held (its whole document) until the tree ended, and read after the parse."""
    from reconciler.manifests.tree import iter_manifest_files
    from reconciler.model import DesiredRegistration

    write_estate(tmp_path / "m", 60, 100, varied=True)
    (tmp_path / "m" / "registrations" / "zz-also-a-template.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: 'SleeveTemplate'\nmetadata: {name: extra}\nspec:\n"
        "  accountSleeves:\n    - {sleeveType: Normal sleeve, modelAggId: 36, targetAllocation: 100}\n"
    )
    files, _ = iter_manifest_files([str(tmp_path / "m")])
    names = [str(path.relative_to(tmp_path / "m")) for path, _ in files]
    assert names[:6] == ["registrations/zz-also-a-template.yaml"] + [f"templates/model-{k}.yaml" for k in range(5)]
    assert names[6:] == sorted(names[6:])  # the rest keep their order
    kinds = [
        "template" if isinstance(r, DesiredRegistration) and r.template else type(r).__name__
        for r in ManifestStream([str(tmp_path / "m")], workers=1)
    ]
    assert kinds.count("template") == 48
    last_templated = max(i for i, k in enumerate(kinds) if k == "template")
    first_batch = kinds.index("DesiredBatch")
    assert last_templated < first_batch  # in file order, not after the whole tree


def test_registrations_on_one_template_share_its_sleeves(tmp_path):
    write_estate(tmp_path / "m", 30, 0, varied=True)
    regs = [r for r in load_manifests([str(tmp_path / "m")]).registrations if r.template == "model-1"]
    assert len(regs) >= 5 and len({id(r.sleeves) for r in regs}) == 1  # one tuple, not one per registration
