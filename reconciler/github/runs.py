"""The plan a merge applies: the merged pull request behind a commit, and the run that saved its plan."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PlanRun", "find_plan_run"]


@dataclass(frozen=True)
class PlanRun:
    pr: int
    head_sha: str
    run_id: int | None


def find_plan_run(github, sha: str, workflow: str | None = None) -> PlanRun | None:
    """The merged PR behind `sha`, and the newest successful pull_request run that planned its head."""
    pulls = [p for p in github.pulls_for_commit(sha) if p.get("merged_at")] or github.pulls_for_commit(sha)
    if not pulls:
        return None
    pr = pulls[0]
    head = pr["head"]["sha"]
    runs = [
        r
        for r in github.runs(head)
        if r.get("conclusion") == "success"
        and (workflow is None or r.get("name") == workflow or r.get("path", "").endswith(workflow))
    ]
    runs.sort(key=lambda r: r.get("created_at") or "", reverse=True)
    return PlanRun(pr["number"], head, runs[0]["id"] if runs else None)
