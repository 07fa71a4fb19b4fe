"""Plans on pull requests, drift as issues: the GitOps logic behind `reconciler github …`.

- One plan comment per pull request, found again by its hidden marker and updated in place on every
  push; a plan longer than one comment is split across several, and parts no longer needed are
  removed. (Atlantis and tfcmt users expect exactly this.)
- A commit status from `plan --detailed-exitcode`: 0 no changes, 2 changes to review, else failure.
- The merged pull request of a commit, and the workflow run that saved its plan.
- One open drift issue, found by its label, created or updated when drift is found, closed when
  drift is gone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.ci import ci_run_url
from reconciler.errors import ConfigError
from reconciler.escaping import md_code, md_fence, md_text
from reconciler.plan import plan_summary
from reconciler.planfile import load_plan
from reconciler.providers.github import GitHubClient
from reconciler.render._values import summary_line
from reconciler.render.markdown import MARKER, render_plan_markdown
from reconciler.secret import Secret

__all__ = ["ADOPT_MARKER", "DRIFT_LABEL", "PLAN_LABELS", "PlanRun", "adoption_body", "comment_context", "commit_and_push",
           "find_plan_run", "github_client_from_env", "label_pull", "plan_comment_parts", "post_plan_comments",
           "status_for_exit_code", "sync_adoption_pull", "sync_drift_issue"]

DRIFT_LABEL = "reconciler-drift"


def post_plan_comments(github, number: int, parts: list[str]) -> dict[str, int]:
    """Create, update or delete our comments so the PR shows exactly `parts`, in order."""
    ours = sorted((c for c in github.comments(number) if (c.get("body") or "").startswith(MARKER)),
                  key=lambda c: c["id"])
    counts = {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0}
    for i, body in enumerate(parts):
        if i < len(ours):
            if ours[i].get("body") == body:
                counts["unchanged"] += 1
            else:
                github.update_comment(ours[i]["id"], body)
                counts["updated"] += 1
        else:
            github.create_comment(number, body)
            counts["created"] += 1
    for stale in ours[len(parts):]:
        github.delete_comment(stale["id"])
        counts["deleted"] += 1
    return counts


PLAN_LABELS = {0: "reconciler: no changes", 2: "reconciler: changes", 1: "reconciler: plan failed"}


def label_pull(github, number: int, exit_code: int) -> str:
    """Exactly one of the plan labels on the pull request: the one for this plan."""
    wanted = PLAN_LABELS.get(exit_code, PLAN_LABELS[1])
    current = {label["name"] for label in github.issue_labels(number)}
    for other in set(PLAN_LABELS.values()) - {wanted}:
        if other in current:
            github.remove_label(number, other)
    if wanted not in current:
        github.add_labels(number, [wanted])
    return wanted


def status_for_exit_code(code: int, summary: str) -> tuple[str, str]:
    if code == 0:
        return "success", "No changes"
    if code == 2:
        return "success", summary.removeprefix("Plan: ")
    return "failure", f"{summary}: see the workflow log" if summary else "plan failed: see the workflow log"


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
    runs = [r for r in github.runs(head) if r.get("conclusion") == "success"
            and (workflow is None or r.get("name") == workflow or r.get("path", "").endswith(workflow))]
    runs.sort(key=lambda r: r.get("created_at") or "", reverse=True)
    return PlanRun(pr["number"], head, runs[0]["id"] if runs else None)


def sync_drift_issue(github, body: str, has_drift: bool, title: str = "Drift detected between manifests and live state") -> str:
    """Open or update the drift issue when there is drift; close it, saying so, when there is none."""
    issues = github.open_issues(DRIFT_LABEL)
    if has_drift:
        if issues:
            github.update_issue(issues[0]["number"], body=body)
            return f"updated issue #{issues[0]['number']}"
        created = github.create_issue(title, body, DRIFT_LABEL)
        return f"opened issue #{created['number']}"
    for issue in issues:
        github.update_issue(issue["number"], state="closed", body=body)
        return f"closed issue #{issue['number']}: no drift"
    return "no drift and no open drift issue"


ADOPT_MARKER = "<!-- reconciler-adopt -->"


def adoption_body(adopted: list[str], left: list[str], findings: list, report_url: str | None) -> str:
    """The evidence an adoption pull request carries: each field before → after, and who changed it
    in Orion and when (editedBy/editedDate and the matching Histories entries)."""
    from reconciler.escaping import md_code, md_text

    lines = [ADOPT_MARKER, "### reconciler: adopt drift from Orion into the manifests", "",
             "The live values below were changed outside Git and are written back into the manifests. "
             "Review them like any change; merging makes them the declared state.", ""]
    lines += ["| Change | Who changed it in Orion | When |", "|---|---|---|"]
    by_address = {f.address: f for f in findings}
    for line in adopted:
        address = line.split(":", 1)[0]
        f = by_address.get(address)
        who = (f.history[0].get("editedBy") if f and f.history and "editedBy" in f.history[0] else
               (f.edited_by if f else None)) or "?"
        when = (f.history[0].get("editedDate") if f and f.history and "editedDate" in f.history[0] else
                (f.edited_date if f else None)) or "?"
        lines.append(f"| {md_code(line.split('  # ')[0], 400)} | {md_text(who, 120)} | {md_text(when, 40)} |")
    if left:
        lines += ["", "Left as they are (see the reasons):", *[f"- {md_text(x, 400)}" for x in left]]
    if report_url:
        lines += ["", f"Drift report: {md_text(report_url, 300)}"]
    return "\n".join(lines) + "\n"


def sync_adoption_pull(github, branch: str, base: str, body: str, title: str = "Adopt drift from Orion") -> str:
    """Open the adoption pull request, or update the one already open for the branch."""
    pulls = github.open_pulls(branch)
    if pulls:
        github.update_pull(pulls[0]["number"], body=body, title=title)
        return f"updated pull request #{pulls[0]['number']}"
    created = github.create_pull(title, branch, base, body)
    return f"opened pull request #{created['number']}"


def commit_and_push(files: list[str], branch: str, message: str, remote: str = "origin") -> None:
    """Commit `files` on `branch` (reset to the current commit) and push it, replacing the branch: an
    adoption branch always holds one commit over its base, whatever an earlier run left."""
    import subprocess

    from reconciler.errors import ReconcilerError

    ident = ["-c", "user.name=reconciler", "-c", "user.email=reconciler@users.noreply.github.com"]
    steps = [["git", "checkout", "-B", branch], ["git", "add", "--", *files],
             ["git", *ident, "commit", "-m", message], ["git", "push", "--force", remote, f"{branch}:{branch}"]]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise ReconcilerError(f"`{' '.join(cmd[:3])} …` failed: {done.stderr.strip()[:300]}")


def github_client_from_env() -> GitHubClient:
    """The GitHub API client for GITHUB_TOKEN, GITHUB_REPOSITORY and GITHUB_API_URL (as Actions sets them)."""
    token, repo = os.environ.get("GITHUB_TOKEN"), os.environ.get("GITHUB_REPOSITORY")
    if not token or not repo:
        raise ConfigError("GITHUB_TOKEN and GITHUB_REPOSITORY must be set (GitHub Actions sets GITHUB_REPOSITORY; "
                          "pass the token with env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }})")
    return GitHubClient(Secret(token), repo, os.environ.get("GITHUB_API_URL") or "https://api.github.com")


def plan_comment_parts(plan_file: str | None, markdown_file: str | None, errors_file: str | None, exit_code: int,
                       sha: str | None) -> tuple[list[str], str]:
    """The comment parts to post and the one-line summary for the commit status.

    In order of preference: the markdown `plan` printed (all a pull-request job may read of an
    encrypted plan); the validate errors, fenced, when the plan failed; else the saved plan, rendered."""
    rendered = Path(markdown_file).read_text(encoding="utf-8") if markdown_file and Path(markdown_file).is_file() else ""
    if MARKER in rendered:   # each comment part starts with the marker
        parts = [MARKER + p.rstrip().removesuffix("---").rstrip() + "\n" for p in rendered.split(MARKER)[1:]]
        head = parts[0].splitlines()[1] if len(parts[0].splitlines()) > 1 else ""
        summary = "plan fails a hard policy" if exit_code == 1 else head.removeprefix("### reconciler plan: ")
        return parts, summary
    if exit_code == 1 or not plan_file:
        errors = Path(errors_file).read_text(encoding="utf-8", errors="replace").strip() if errors_file and \
            Path(errors_file).is_file() else ""
        lines = errors.splitlines()
        shown = "\n".join(lines[:200]) + (f"\n… {len(lines) - 200} more line(s) in the workflow log" if len(lines) > 200 else "")
        parts = [f"{MARKER}\n### reconciler plan failed for {(sha or 'this commit')[:12]}\n\n"
                 + (f"The manifests are invalid:\n\n{md_fence(shown)}\n" if errors else
                    "The plan could not be made; the workflow log says why.")]
        summary = (f"validate failed: {sum(1 for ln in lines if ':' in ln and not ln.startswith('Error:'))} error(s)"
                   if errors else "plan failed")
        return parts, summary
    saved = load_plan(plan_file)
    return render_plan_markdown(saved.plan, environment=saved.endpoints), summary_line(plan_summary(saved.plan))


def comment_context(parts: list[str], sha: str | None, note: str | None) -> list[str]:
    """The commit and the CI run under the first part's title, and an optional note: what a reviewer
    needs to know the comment describes the newest push."""
    run = ci_run_url()
    context = " · ".join(x for x in (f"commit {md_code(sha[:12])}" if sha else "",
                                     f"[CI run]({run})" if run else "") if x)
    first = parts[0].split("\n")
    title = 2 if len(first) > 1 and first[1].startswith("###") else 1
    extra = ([context, ""] if context else []) + ([f"> {md_text(note, 1000)}", ""] if note else [])
    return ["\n".join(first[:title] + [""] + extra + first[title:]).replace("\n\n\n", "\n\n")] + parts[1:]
