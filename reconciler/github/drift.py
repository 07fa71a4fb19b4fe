"""Drift on GitHub: one issue that opens, updates and closes with the drift, and adoption pull requests.

- One open drift issue, found by its label, created or updated when drift is found, closed when
  drift is gone.
- `drift --adopt` as a pull request: one branch, one commit over its base, a body that carries the
  evidence (each field before → after, who changed it in Orion and when).
"""

from __future__ import annotations

import base64
import subprocess

from reconciler.config.environment import child_env
from reconciler.errors import ReconcilerError
from reconciler.escaping import md_code, md_text
from reconciler.secret import Secret

__all__ = ["ADOPT_MARKER", "DRIFT_LABEL", "adoption_body", "commit_and_push", "sync_adoption_pull", "sync_drift_issue"]

DRIFT_LABEL = "reconciler-drift"


def sync_drift_issue(
    github, body: str, has_drift: bool, title: str = "Drift detected between manifests and live state"
) -> str:
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
    lines = [
        ADOPT_MARKER,
        "### reconciler: adopt drift from Orion into the manifests",
        "",
        "The live values below were changed outside Git and are written back into the manifests. "
        "Review them like any change; merging makes them the declared state.",
        "",
    ]
    lines += ["| Change | Who changed it in Orion | When |", "|---|---|---|"]
    by_address = {f.address: f for f in findings}
    for line in adopted:
        address = line.split(":", 1)[0]
        f = by_address.get(address)
        who = (
            f.history[0].get("editedBy")
            if f and f.history and "editedBy" in f.history[0]
            else (f.edited_by if f else None)
        ) or "?"
        when = (
            f.history[0].get("editedDate")
            if f and f.history and "editedDate" in f.history[0]
            else (f.edited_date if f else None)
        ) or "?"
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


def commit_and_push(
    files: list[str],
    branch: str,
    message: str,
    remote: str = "origin",
    *,
    token: Secret | None = None,
    server: str = "https://github.com",
) -> None:
    """Commit `files` on `branch` (reset to the current commit) and push it, replacing the branch: an
    adoption branch always holds one commit over its base, whatever an earlier run left.

    The workflow checks out with `persist-credentials: false`, so nothing in `.git/config` can push. The
    push alone gets `token`, as an HTTP header for `server` passed to that one git process through its
    environment (GIT_CONFIG_*: never on a command line, never written to disk)."""
    ident = ["-c", "user.name=reconciler", "-c", "user.email=reconciler@users.noreply.github.com"]
    push_env = None
    if token is not None:
        basic = base64.b64encode(f"x-access-token:{token.reveal()}".encode()).decode()
        push_env = child_env(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0=f"http.{server.rstrip('/')}/.extraheader",
            GIT_CONFIG_VALUE_0=f"AUTHORIZATION: basic {basic}",
        )
    steps = [
        (["git", "checkout", "-B", branch], None),
        (["git", "add", "--", *files], None),
        (["git", *ident, "commit", "-m", message], None),
        (["git", "push", "--force", remote, f"{branch}:{branch}"], push_env),
    ]
    for cmd, env in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise ReconcilerError(f"`{' '.join(cmd[:3])} …` failed: {done.stderr.strip()[:300]}")
