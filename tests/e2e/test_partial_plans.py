"""`plan --changed-since` end to end (issue 30): the real CLI, a manifests repository, the sandbox."""

from __future__ import annotations

import json

import httpx
import pytest

from ..helpers.processes import reconciler, sandbox_env
from ..helpers.sandbox import counts
from ..helpers.trees import committed_repository, git

pytestmark = pytest.mark.integration


@pytest.fixture
def repo(tmp_path):
    where = committed_repository(tmp_path / "repo")
    git(where, "checkout", "-qb", "feature")
    return where


def test_a_partial_plan_reads_and_plans_only_what_changed_and_says_so(sandbox, repo, tmp_path):
    reg = repo / "manifests" / "registrations" / "west" / "sd-regname1.yaml"
    reg.write_text(reg.read_text() + "  autoRebalDay: 9\n")
    git(repo, "rm", "-q", "manifests/trades/div-income-2026-11-20.yaml")
    git(repo, "commit", "-qam", "one registration, one batch gone")
    env = sandbox_env(sandbox)
    r = reconciler(env, "plan", "--changed-since", "main", "--format", "json", cwd=repo)
    assert r.returncode in (0, 2), r.stderr
    doc = json.loads(r.stdout)
    assert doc["partial"]["changed_files"] == ["manifests/registrations/west/sd-regname1.yaml"]
    assert {g["address"] for g in doc["partial"]["no_longer_managed"]} == {
        "TradeInstruction/10000101",
        "TradeInstruction/10000102",
    }
    assert {c["address"] for c in doc["changes"]} <= {"SleeveRegistration/sd-regname1"}
    text = reconciler(env, "plan", "--changed-since", "main", cwd=repo)
    assert "Partial plan: the resources of 1 manifest file(s) changed since main" in text.stdout
    assert "drift elsewhere is not shown" in text.stdout
    assert "no longer managed here: TradeInstruction/10000101" in text.stdout
    md = reconciler(env, "plan", "--changed-since", "main", "--format", "markdown", cwd=repo)
    assert "**Partial plan**" in md.stdout
    assert "autoRebalDay" in text.stdout and "SleeveRegistration/okafor-trust" not in text.stdout
    # live state is read for the scope only: one registration, and no trade ticket at all
    httpx.post(f"{sandbox.url}/_sandbox/counters/reset")
    reconciler(env, "plan", "--changed-since", "main", cwd=repo)
    read = counts(sandbox)
    assert read.get("POST /api/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves") == 1
    assert not any("tradetickets" in k for k in read), read


def test_a_saved_partial_plan_applies_exactly_its_resources(sandbox, repo, tmp_path):
    reg = repo / "manifests" / "registrations" / "east" / "chen-ira.yaml"
    reg.write_text(reg.read_text().replace("isDoNotTrade: true", "isDoNotTrade: true\n  autoRebalDay: 20"))
    git(repo, "commit", "-qam", "chen-ira rebalances on the 20th")
    env = sandbox_env(sandbox)
    out = tmp_path / "plan.json"
    planned = reconciler(env, "plan", "--changed-since", "main", "--out", str(out), "--no-encrypt", cwd=repo)
    assert planned.returncode == 0, planned.stderr
    applied = reconciler(env, "apply", str(out), "--auto-approve", "--report", str(tmp_path / "r.json"), cwd=repo)
    assert applied.returncode == 0, applied.stderr
    items = json.loads((tmp_path / "r.json").read_text())["items"]
    assert [i["address"] for i in items] == ["SleeveRegistration/chen-ira"]  # not the other four that differ
    assert sandbox.state.registrations[31549]["autoRebalDay"] == 20
    assert not [w for w in sandbox.state.writes if w["api"] == "sei"]  # the tickets were not in scope
    # the full plan still shows the rest of the difference, untouched
    full = reconciler(env, "plan", "--detailed-exitcode", cwd=repo)
    assert full.returncode == 2 and "SleeveRegistration/okafor-trust" in full.stdout


def test_a_saved_partial_plan_whose_scope_grew_is_stale(sandbox, repo, tmp_path):
    reg = repo / "manifests" / "registrations" / "east" / "chen-ira.yaml"
    reg.write_text(reg.read_text().replace("isDoNotTrade: true", "isDoNotTrade: false"))
    git(repo, "commit", "-qam", "one change")
    env = sandbox_env(sandbox)
    out = tmp_path / "plan.json"
    assert (
        reconciler(env, "plan", "--changed-since", "main", "--out", str(out), "--no-encrypt", cwd=repo).returncode == 0
    )
    other = repo / "manifests" / "registrations" / "east" / "okafor-trust.yaml"
    other.write_text(other.read_text() + "  autoRebalDay: 3\n")
    git(repo, "commit", "-qam", "another change, not reviewed")
    r = reconciler(env, "apply", str(out), "--auto-approve", cwd=repo)
    assert r.returncode == 1 and "stale" in r.stderr, r.stderr
    assert not sandbox.state.writes
