"""Who approved the pull request a plan comes from: its approving reviews on the planned commit.

Read when the plan is saved (bound into it, under its encryption) and again at apply, since a review
can be dismissed, or new commits pushed, in between; apply judges by its own read. A reviewer counts
by their latest review only, in state APPROVED, on the planned commit. The policy rules that use
them (requireApprovals, applierNotApprover) are in manifests/policy.py.
"""

from __future__ import annotations

from reconciler.config.environment import RunFacts
from reconciler.errors import ReconcilerError
from reconciler.escaping import bounded
from reconciler.github import open_client
from reconciler.model import Approval, Approvals

__all__ = ["read_approvals"]


def read_approvals(facts: RunFacts, pull_request: int | None, commit: str | None, applier: str | None) -> Approvals:
    """The approvals of `pull_request` on `commit`; `error` says why they could not be read (a policy
    that needs them then fails, naming it)."""
    if pull_request is None:
        return Approvals(None, commit, applier=applier)
    try:
        client = open_client(facts)
    except ReconcilerError as e:
        return Approvals(pull_request, commit, applier=applier, error=str(e))
    try:
        author = (client.pull(pull_request).get("user") or {}).get("login")
        latest: dict[str, dict] = {}
        for review in client.reviews(pull_request):
            login = (review.get("user") or {}).get("login")
            if login and review.get("state") in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                latest[login] = review  # oldest first: the last one a reviewer left is what stands
    except ReconcilerError as e:
        return Approvals(pull_request, commit, applier=applier, error=bounded(e))
    finally:
        client.close()
    approvals = tuple(
        Approval(login, str(r.get("submitted_at") or ""), r.get("commit_id"))
        for login, r in sorted(latest.items())
        if r.get("state") == "APPROVED" and (commit is None or r.get("commit_id") == commit)
    )
    return Approvals(pull_request, commit, author, approvals, applier)
