"""`github …`: plan comments, commit status, adoption pull requests, drift issues (reconciler/github/)."""

from __future__ import annotations

import click

from reconciler.cli.app import CONFIG, SANDBOX, Context, cli, default_paths
from reconciler.errors import ReconcilerError


@cli.group()
def github() -> None:
    """GitOps helpers for GitHub Actions: plan comments, commit status, drift issues.

    They read GITHUB_TOKEN, GITHUB_REPOSITORY and GITHUB_API_URL from the environment.
    """


@github.command("comment")
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(dir_okay=False),
    help="The plan as `plan --format markdown` printed it: what to post when the saved plan is encrypted "
    "(the pull-request job cannot, and should not, read it).",
)
@click.option(
    "--errors",
    "errors_file",
    type=click.Path(dir_okay=False),
    help="What `validate` printed: posted (file:line) when the plan could not be made.",
)
@click.option("--note", help="A line to put above the plan (e.g. why a fresh plan is posted after a merge).")
@click.option("--pr", "number", required=True, type=int, help="Pull request number.")
@click.option("--sha", help="Commit to set the reconciler/plan status on.")
@click.option(
    "--exit-code",
    "exit_code",
    type=int,
    default=2,
    show_default=True,
    help="The exit code of `plan --detailed-exitcode` (1: the plan failed).",
)
@click.pass_obj
def github_comment(ctx: Context, plan_file, markdown_file, errors_file, note, number, sha, exit_code) -> int:
    """Post the plan on the pull request, updating our own comment(s) in place."""
    from reconciler.github import open_client
    from reconciler.github.comments import (
        comment_context,
        label_pull,
        plan_comment_parts,
        post_plan_comments,
        status_for_exit_code,
    )

    parts, summary = plan_comment_parts(plan_file, markdown_file, errors_file, exit_code, sha)
    parts = comment_context(parts, sha, note, ctx.facts.run_url)
    summary_file = ctx.facts.step_summary
    if summary_file:  # the full plan, whatever the comment had to leave out
        with open(summary_file, "a", encoding="utf-8") as f:
            f.write("\n\n".join(parts) + "\n")
    client = open_client(ctx.facts)
    try:
        counts = post_plan_comments(client, number, parts)
        ctx.out.info(f"label on #{number}: {label_pull(client, number, exit_code)}")
        ctx.out.info(f"plan comment on #{number}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
        if sha:
            state, description = status_for_exit_code(exit_code, summary)
            client.set_status(sha, state, description)
            ctx.out.info(f"status reconciler/plan on {sha[:12]}: {state} ({description})")
    finally:
        client.close()
    return 0


@github.command("adopt-pr")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--branch", default="reconciler/adopt-drift", show_default=True, help="The adoption branch.")
@click.option("--base", default="main", show_default=True, help="The branch the pull request targets.")
@click.option("--report-url", help="A link to the drift report, for the pull request's body.")
@SANDBOX
@CONFIG
@click.pass_obj
def github_adopt_pr(ctx: Context, paths, branch, base, report_url, sandbox, config_file) -> int:
    """Adopt drift into the manifests, push it to a branch, and open (or update) one pull request with the evidence."""
    from reconciler.audit.adopt import plan_adoption, write_adoption
    from reconciler.audit.drift import build_drift_report
    from reconciler.config import load_settings
    from reconciler.github import open_client
    from reconciler.github.drift import adoption_body, commit_and_push, sync_adoption_pull
    from reconciler.manifests import load_manifests
    from reconciler.plan.stream import read_selected
    from reconciler.vendors.session import open_session

    paths = paths or default_paths(ctx)
    manifests = load_manifests(paths)
    settings = load_settings(paths, config_file=config_file)
    with open_session(settings, sandbox=sandbox) as session:
        _, _, live = read_selected(manifests, session.vendors, settings, missing_ok=True)
        report = build_drift_report(manifests, live, session.vendors, settings.ignore)  # the evidence: who, when
    adoption = plan_adoption(manifests, live, settings.ignore, tuple(paths))
    written = write_adoption(adoption)
    for line in adoption.left:
        ctx.out.error(f"left  {line}")
    if not written:
        ctx.out.info("Nothing to adopt: no pull request is opened.")
        return 2 if adoption.left else 0
    commit_and_push(
        [str(adoption.paths[n]) for n in written],
        branch,
        f"Adopt drift from Orion into {len(written)} manifest(s)\n\n" + "\n".join(adoption.adopted),
        token=ctx.facts.github_token,
        server=ctx.facts.github_server_url,
    )
    client = open_client(ctx.facts)
    try:
        ctx.out.info(
            sync_adoption_pull(
                client, branch, base, adoption_body(adoption.adopted, adoption.left, report.findings, report_url)
            )
        )
    finally:
        client.close()
    return 2 if adoption.left else 0


@github.command("find-plan")
@click.option("--sha", required=True, help="The merge commit on the main branch.")
@click.option("--workflow", help="Only runs of this workflow (name or file).")
@click.pass_obj
def github_find_plan(ctx: Context, sha, workflow) -> int:
    """Print pr=, head_sha= and run_id= of the plan saved for the pull request merged as SHA ($GITHUB_OUTPUT lines)."""
    from reconciler.github import open_client
    from reconciler.github.runs import find_plan_run

    client = open_client(ctx.facts)
    try:
        found = find_plan_run(client, sha, workflow)
    finally:
        client.close()
    if found is None:
        ctx.out.info(f"no pull request found for {sha}; the apply job will plan afresh")
        ctx.out.result("pr=\nhead_sha=\nrun_id=")
        return 0
    ctx.out.result(f"pr={found.pr}\nhead_sha={found.head_sha}\nrun_id={found.run_id or ''}")
    return 0


@github.command("drift-issue")
@click.argument("report", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--exit-code", "exit_code", type=int, required=True, help="The exit code of `reconciler drift` (2: drift)."
)
@click.pass_obj
def github_drift_issue(ctx: Context, report, exit_code) -> int:
    """Open or update the drift issue (exit code 2), or close it (0)."""
    from pathlib import Path

    from reconciler.github import open_client
    from reconciler.github.drift import sync_drift_issue

    if exit_code not in (0, 2):
        raise ReconcilerError(f"drift failed (exit {exit_code}); the issue is left as it is")
    client = open_client(ctx.facts)
    try:
        ctx.out.info(sync_drift_issue(client, Path(report).read_text(encoding="utf-8"), exit_code == 2))
    finally:
        client.close()
    return 0
