"""The benchmark's small version: 500 registrations, counts only (requests, deepdiff calls), never times."""

from __future__ import annotations

import re

import httpx
import pytest

from ..benchmarks.estate import write_estate
from ..helpers.processes import quick_env

pytestmark = pytest.mark.integration


def test_plan_at_500_uses_bulk_reads_and_deepdiff_only_on_drift(sandbox, cli, tmp_path, monkeypatch):
    state = write_estate(tmp_path / "m", 500, 1000, drift=0.01)
    httpx.put(f"{sandbox.url}/_sandbox/state", json=state, timeout=60)
    httpx.post(f"{sandbox.url}/_sandbox/counters/reset")
    for k, v in quick_env(sandbox).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("RECONCILER_STATS", "1")
    r = cli("plan", str(tmp_path / "m"), "--detailed-exitcode")
    assert r.code == 2, r
    before = int(re.search(r"deepdiff calls (\d+)", r.err).group(1))
    counts = httpx.get(f"{sandbox.url}/_sandbox/counters").json()["requests"]
    assert counts == {
        "POST /api/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves": 1,  # ⌈500 / 500⌉
        "GET /v1/order/tradetickets": 1,
    }  # 990 rows, 1,000 a page
    assert "Plan: 10 to create, 5 to update, 0 to remove, 0 conflicts" in r.out
    # a second plan in the same process adds exactly one deepdiff call per drifted registration
    r2 = cli("plan", str(tmp_path / "m"))
    assert int(re.search(r"deepdiff calls (\d+)", r2.err).group(1)) - before == 5


def _large_tree(sandbox, tmp_path, monkeypatch, registrations: int, instructions: int, drift: float) -> tuple[str]:
    """An estate on disk and in the sandbox, checked as a large tree is (in worker processes) though small."""
    import reconciler.manifests as manifests_pkg

    state = write_estate(tmp_path / "m", registrations, instructions, drift=drift)
    httpx.put(f"{sandbox.url}/_sandbox/state", json=state, timeout=60)
    for k, v in quick_env(sandbox).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(manifests_pkg, "PARALLEL_THRESHOLD", 100)
    monkeypatch.setattr(manifests_pkg, "_start_method", lambda: "spawn")  # a test process runs threads: never fork it
    return (str(tmp_path / "m"),)


def test_the_streamed_plan_equals_the_plan_built_from_everything_at_once(sandbox, tmp_path, monkeypatch):
    """Resource for resource, on an estate that fills several read chunks, with the tree checked in
    worker processes and SEI's pages read alongside (as for a large tree), drift in both vendors."""
    from reconciler.config import load_settings
    from reconciler.manifests import ManifestStream, load_manifests
    from reconciler.plan.builder import build_plan
    from reconciler.plan.stream import plan_stream
    from reconciler.vendors import open_vendors
    from reconciler.vendors.reads import read_live_state

    paths = _large_tree(sandbox, tmp_path, monkeypatch, 1200, 1000, drift=0.05)
    settings = load_settings(paths)
    with open_vendors(settings) as vendors:
        stream = ManifestStream(paths, workers=2)
        assert stream.large  # the worker and pager path, not the small-tree one
        streamed = plan_stream(paths, vendors, settings, stream=stream)
        manifests = load_manifests(paths, workers=1)
        live = read_live_state(vendors, manifests.registrations, manifests.instructions, settings)
        reference = build_plan(manifests, live, batch_size=settings.batch_size, ignore=settings.ignore)
    assert streamed.digest == manifests.digest
    assert streamed.plan == reference
    assert [c.action.value for c in reference.actionable()].count("update") == 60
    assert [c.action.value for c in reference.actionable()].count("create") == 50


def test_slow_reads_hold_back_parsing_instead_of_piling_up_registrations(sandbox, tmp_path, monkeypatch):
    """Memory stays flat when Orion answers slower than the tree is parsed: registrations wait for their
    read in bounded number (READS_AHEAD reads per read worker), and checked chunks wait for the stream's
    reader in bounded number (CHUNKS_AHEAD per parsing worker). Unbounded, both held the whole tree."""
    import time

    import reconciler.manifests as manifests_pkg
    import reconciler.plan.stream as pipeline
    from reconciler.config import load_settings
    from reconciler.manifests import CHUNKS_AHEAD, ManifestStream
    from reconciler.plan.builder import PlanBuilder
    from reconciler.vendors import open_vendors

    paths = _large_tree(sandbox, tmp_path, monkeypatch, 3000, 0, drift=0)
    cut = manifests_pkg._chunks_in_order
    monkeypatch.setattr(manifests_pkg, "_chunks_in_order", lambda files, n: cut(files, 60))
    monkeypatch.setenv("RECONCILER_READ_CHUNK", "100")
    settings = load_settings(paths)
    parsed, diffed, waiting = [0], [0], [0]
    submitted, first_seen = [0], [None]

    with open_vendors(settings) as vendors:
        read = vendors.orion.list_with_sleeves

        def slow_read(*args, **kwargs):
            time.sleep(0.4)  # Orion slower than parsing
            return read(*args, **kwargs)

        add = PlanBuilder.add_registration

        def counted_add(self, desired, current):
            diffed[0] += 1
            return add(self, desired, current)

        monkeypatch.setattr(vendors.orion, "list_with_sleeves", slow_read)
        monkeypatch.setattr(PlanBuilder, "add_registration", counted_add)
        stream = ManifestStream(paths, workers=2).start()  # hands out its first chunks
        submit = stream._pool.submit

        def counted_submit(*args):
            submitted[0] += 1
            return submit(*args)

        stream._pool.submit = counted_submit
        files = stream._checked_files

        def counted_files():
            for result in files():
                if first_seen[0] is None:
                    first_seen[0] = 2 * CHUNKS_AHEAD + submitted[0]  # chunks handed out when the first is read
                parsed[0] += 1
                waiting[0] = max(waiting[0], parsed[0] - diffed[0])
                yield result

        stream._checked_files = counted_files
        streamed = pipeline.plan_stream(paths, vendors, settings, stream=stream)
    assert streamed.plan.unchanged == 3000 and diffed[0] == 3000
    assert first_seen[0] <= 2 * CHUNKS_AHEAD + 1 and submitted[0] == 60 - 2 * CHUNKS_AHEAD  # 60 chunks in all
    assert 0 < waiting[0] <= (pipeline.READS_AHEAD * settings.read_workers + 2) * settings.read_chunk
