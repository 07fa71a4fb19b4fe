"""The benchmark's small version: 500 registrations, counts only (requests, deepdiff calls), never times."""

from __future__ import annotations

import re

import httpx
import pytest

from .benchmarks.estate import write_estate
from .conftest import sandbox_env

pytestmark = pytest.mark.integration


def test_plan_at_500_uses_bulk_reads_and_deepdiff_only_on_drift(sandbox, cli, tmp_path, monkeypatch):
    state = write_estate(tmp_path / "m", 500, 1000, drift=0.01)
    httpx.put(f"{sandbox.url}/_sandbox/state", json=state, timeout=60)
    httpx.post(f"{sandbox.url}/_sandbox/counters/reset")
    for k, v in sandbox_env(sandbox).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("RECONCILER_STATS", "1")
    r = cli("plan", str(tmp_path / "m"), "--detailed-exitcode")
    assert r.code == 2, r
    before = int(re.search(r"deepdiff calls (\d+)", r.err).group(1))
    counts = httpx.get(f"{sandbox.url}/_sandbox/counters").json()["requests"]
    assert counts == {"POST /api/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves": 1,  # ⌈500 / 500⌉
                      "GET /v1/order/tradetickets": 1}                                        # 990 rows, 1,000 a page
    assert "Plan: 10 to create, 5 to update, 0 to remove, 0 conflicts" in r.out
    # a second plan in the same process adds exactly one deepdiff call per drifted registration
    r2 = cli("plan", str(tmp_path / "m"))
    assert int(re.search(r"deepdiff calls (\d+)", r2.err).group(1)) - before == 5


def test_the_streamed_plan_equals_the_plan_built_from_everything_at_once(sandbox, tmp_path, monkeypatch):
    """Resource for resource, on an estate that fills several read chunks, with the tree checked in
    worker processes and SEI's pages read alongside (as for a large tree), drift in both vendors."""
    import reconciler.manifests as manifests_pkg
    from reconciler.config import load_settings
    from reconciler.live import read_live_state
    from reconciler.manifests import ManifestStream, load_manifests
    from reconciler.pipeline import plan_stream
    from reconciler.plan import build_plan
    from reconciler.providers import open_vendors

    state = write_estate(tmp_path / "m", 1200, 1000, drift=0.05)
    httpx.put(f"{sandbox.url}/_sandbox/state", json=state, timeout=60)
    for k, v in sandbox_env(sandbox).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(manifests_pkg, "PARALLEL_THRESHOLD", 100)
    monkeypatch.setattr(manifests_pkg, "_spawn_is_safe", lambda: True)  # pytest-xdist's workers have no main file
    paths = (str(tmp_path / "m"),)
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
