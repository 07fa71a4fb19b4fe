"""Approvals travel with the plan (issue 31): the pull request's approving reviews on the planned commit,
read from a fake GitHub when the plan is saved and again at apply, enforced by requireApprovals and
applierNotApprover, and recorded in every change record. The CLI runs as a real process."""

from __future__ import annotations

import json

import pytest

from ..helpers.fake_github import TOKEN
from ..helpers.processes import reconciler, sandbox_env
from ..helpers.sandbox import writes
from ..helpers.trees import repository

pytestmark = pytest.mark.integration

HEAD = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
POLICY = """\
apiVersion: reconciler/v1
kind: Policy
metadata: {name: four-eyes}
spec:
  enforcement: hard
  approvals:
    requireApprovals: 1
    applierNotApprover: true
"""


def _review(login: str, state: str = "APPROVED", commit: str = HEAD) -> dict:
    return {"user": {"login": login}, "state": state, "submitted_at": "2026-12-04T15:00:00Z", "commit_id": commit}


def _env(sandbox, gh, **extra):
    return sandbox_env(
        sandbox,
        GITHUB_TOKEN=TOKEN,
        GITHUB_REPOSITORY="acme/manifests",
        GITHUB_API_URL=gh.url,
        RECONCILER_PULL_REQUEST="12",
        RECONCILER_COMMIT=HEAD,
        **extra,
    )


def _policy_repo(tmp_path):
    repo = repository(tmp_path / "repo")
    (repo / "manifests" / "policy.yaml").write_text(POLICY)
    return repo


def test_one_approval_by_someone_else_passes_and_the_approvers_are_recorded(sandbox, gh, tmp_path):
    repo = _policy_repo(tmp_path)
    gh.authors[12] = "alice"
    gh.reviews[12] = [_review("carol", "CHANGES_REQUESTED"), _review("bob"), _review("dave", commit="0" * 40)]
    env = _env(sandbox, gh, GITHUB_ACTOR="ci-bot")
    plan = reconciler(env, "plan", "--out", str(tmp_path / "plan.json"), "--no-encrypt", cwd=repo)
    assert plan.returncode in (0, 2), plan.stderr
    assert "requireApprovals" in plan.stdout and "1 approval(s)" in plan.stdout, plan.stdout
    assert "dave" not in plan.stdout  # an approval of an earlier push does not approve this commit
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert [a["login"] for a in saved["saved"]["binding"]["approvers"]] == ["bob"]
    applied = reconciler(env, "apply", str(tmp_path / "plan.json"), "--auto-approve", cwd=repo)
    assert applied.returncode == 0, applied.stderr
    assert "approved on a1b2c3d4e5f6 by bob" in applied.stderr
    records = json.loads(reconciler(env, "history", "--format", "json", cwd=repo).stdout)
    assert records and all([a["login"] for a in r["approvers"]] == ["bob"] for r in records)
    assert all(r["pull_request"] == 12 and not r["emergency"] for r in records)
    reviews_read = [c for c in gh.calls if c[1].endswith("/pulls/12/reviews")]
    assert len(reviews_read) == 2  # when the plan was saved, and again at apply


def test_a_self_approved_pull_request_is_refused_with_zero_writes(sandbox, gh, tmp_path):
    repo = _policy_repo(tmp_path)
    gh.authors[12] = "alice"
    gh.reviews[12] = [_review("alice")]
    env = _env(sandbox, gh, GITHUB_ACTOR="ci-bot")
    r = reconciler(env, "apply", "--auto-approve", cwd=repo)
    assert r.returncode == 1
    assert "four-eyes requireApprovals (hard)" in r.stderr and "0 approval(s)" in r.stderr, r.stderr
    assert "an approval by the author does not count" in r.stderr
    assert writes(sandbox) == 0


def test_the_approver_may_not_apply_their_own_approval(sandbox, gh, tmp_path):
    repo = _policy_repo(tmp_path)
    gh.authors[12] = "alice"
    gh.reviews[12] = [_review("bob")]
    r = reconciler(_env(sandbox, gh, GITHUB_ACTOR="bob"), "apply", "--auto-approve", cwd=repo)
    assert r.returncode == 1 and "bob applies and approved this change" in r.stderr, r.stderr
    assert writes(sandbox) == 0
