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
