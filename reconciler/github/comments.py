"""Plans on pull requests: one comment (split when long), the plan labels and the commit status.

One plan comment per pull request, found again by its hidden marker and updated in place on every
push; a plan longer than one comment is split across several, and parts no longer needed are removed
(Atlantis and tfcmt users expect exactly this). The status follows `plan --detailed-exitcode`: 0 no
changes, 2 changes to review, anything else a failure.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.escaping import md_code, md_fence, md_text
from reconciler.plan.builder import plan_summary
from reconciler.plan.saved import load_plan
from reconciler.render._values import summary_line
from reconciler.render.markdown import MARKER, render_plan_markdown

__all__ = [
    "PLAN_LABELS",
    "comment_context",
    "label_pull",
    "plan_comment_parts",
    "post_plan_comments",
    "status_for_exit_code",
]


def post_plan_comments(github, number: int, parts: list[str]) -> dict[str, int]:
    """Create, update or delete our comments so the PR shows exactly `parts`, in order."""
    ours = sorted(
        (c for c in github.comments(number) if (c.get("body") or "").startswith(MARKER)), key=lambda c: c["id"]
    )
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
    for stale in ours[len(parts) :]:
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


def plan_comment_parts(
    plan_file: str | None, markdown_file: str | None, errors_file: str | None, exit_code: int, sha: str | None
) -> tuple[list[str], str]:
    """The comment parts to post and the one-line summary for the commit status.

    In order of preference: the markdown `plan` printed (all a pull-request job may read of an
    encrypted plan); the validate errors, fenced, when the plan failed; else the saved plan, rendered."""
    rendered = (
        Path(markdown_file).read_text(encoding="utf-8") if markdown_file and Path(markdown_file).is_file() else ""
    )
    if MARKER in rendered:  # each comment part starts with the marker
        parts = [MARKER + p.rstrip().removesuffix("---").rstrip() + "\n" for p in rendered.split(MARKER)[1:]]
        head = parts[0].splitlines()[1] if len(parts[0].splitlines()) > 1 else ""
        summary = "plan fails a hard policy" if exit_code == 1 else head.removeprefix("### reconciler plan: ")
        return parts, summary
    if exit_code == 1 or not plan_file:
        errors = (
            Path(errors_file).read_text(encoding="utf-8", errors="replace").strip()
            if errors_file and Path(errors_file).is_file()
            else ""
        )
        lines = errors.splitlines()
        shown = "\n".join(lines[:200]) + (
            f"\n… {len(lines) - 200} more line(s) in the workflow log" if len(lines) > 200 else ""
        )
        parts = [
            f"{MARKER}\n### reconciler plan failed for {(sha or 'this commit')[:12]}\n\n"
            + (
                f"The manifests are invalid:\n\n{md_fence(shown)}\n"
                if errors
                else "The plan could not be made; the workflow log says why."
            )
        ]
        summary = (
            f"validate failed: {sum(1 for ln in lines if ':' in ln and not ln.startswith('Error:'))} error(s)"
            if errors
            else "plan failed"
        )
        return parts, summary
    saved = load_plan(plan_file)
    return render_plan_markdown(saved.plan, environment=saved.endpoints), summary_line(plan_summary(saved.plan))


def comment_context(parts: list[str], sha: str | None, note: str | None, ci_run_url: str | None) -> list[str]:
    """The commit and the CI run under the first part's title, and an optional note: what a reviewer
    needs to know the comment describes the newest push."""
    run = ci_run_url
    context = " · ".join(
        x for x in (f"commit {md_code(sha[:12])}" if sha else "", f"[CI run]({run})" if run else "") if x
    )
    first = parts[0].split("\n")
    title = 2 if len(first) > 1 and first[1].startswith("###") else 1
    extra = ([context, ""] if context else []) + ([f"> {md_text(note, 1000)}", ""] if note else [])
    return ["\n".join(first[:title] + [""] + extra + first[title:]).replace("\n\n\n", "\n\n")] + parts[1:]
