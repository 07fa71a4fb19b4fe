"""`apply` (a saved plan, or plan-then-confirm) and `show` (render a saved plan)."""

from __future__ import annotations

import click

from reconciler.cli.app import (
    ALLOW_EMPTY,
    CONFIG,
    DURATION,
    FORMAT,
    SANDBOX,
    Context,
    cli,
    default_paths,
    emit_plan,
    selectors,
)


def _saved_plan_arg(args: tuple[str, ...]):
    """A single argument whose *content* is a saved plan (its name does not matter)."""
    from pathlib import Path

    from reconciler.config import plan_identity
    from reconciler.plan.saved import load_plan
    from reconciler.sealing import AGE_MAGIC

    if len(args) != 1 or not Path(args[0]).is_file():
        return None
    with open(args[0], "rb") as f:
        head = f.read(len(AGE_MAGIC))
    if head.lstrip()[:1] == b"{" or head == AGE_MAGIC:
        return load_plan(args[0], plan_identity())
    return None


@cli.command()
@click.argument("args", nargs=-1, type=click.Path())
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation (CI).")
@click.option("--parallelism", type=click.IntRange(1, 32), help="Orion batches (and SEI requests) at once [default 4].")
@click.option("--max-changes", type=click.IntRange(0), help="Refuse plans with more changes than this.")
@click.option(
    "--poll-timeout", type=DURATION, help="How long to wait for an Orion batch, e.g. 30m [env RECONCILER_POLL_TIMEOUT]."
)
@click.option("--report", "report_file", type=click.Path(dir_okay=False), help="Write the JSON apply report here.")
@click.option(
    "--break-lock",
    is_flag=True,
    help="Kept for old scripts: the lock is released by the kernel when its "
    "holder dies, and a live holder is never broken.",
)
@click.option(
    "--override-policy", "overrides", multiple=True, help="Apply although this soft policy fails (needs --reason)."
)
@click.option("--reason", help="Why the soft policies named by --override-policy are overridden (recorded).")
@click.option(
    "--now", hidden=True, help="Refused: apply judges change windows by this machine's clock (--now is for plan)."
)
@click.option("--allow-plaintext-plan", is_flag=True, help="In CI with recipients configured, accept a plaintext plan.")
@click.option("--no-encrypt", is_flag=True, help="Write the apply report in plaintext even where recipients are set.")
@click.option(
    "--lock-timeout",
    type=DURATION,
    default=0,
    show_default=True,
    help="How long to wait for another apply of this workspace to finish, e.g. 3s or 5m.",
)
@click.option(
    "--on-stale",
    type=click.Choice(["fail", "replan"]),
    default="fail",
    show_default=True,
    help="A stale saved plan: refuse (fail), or say why and plan afresh from its manifests (replan).",
)
@click.option("--target", multiple=True, help="When planning: only these addresses (globs).")
@click.option("--exclude", multiple=True, help="When planning: leave these addresses out (globs).")
@click.option("--selector", multiple=True, help="When planning: only resources whose labels match k=v.")
@SANDBOX
@CONFIG
@ALLOW_EMPTY
@click.pass_obj
def apply(
    ctx: Context,
    args,
    auto_approve,
    parallelism,
    max_changes,
    poll_timeout,
    report_file,
    break_lock,
    overrides,
    reason,
    now,
    allow_plaintext_plan,
    no_encrypt,
    lock_timeout,
    on_stale,
    target,
    exclude,
    selector,
    sandbox,
    config_file,
    allow_empty,
) -> int:
    """Apply a saved plan (FILE), or plan PATHs and apply after confirmation."""
    from reconciler.manifests import ManifestStream

    if overrides and not reason:
        raise click.UsageError("--override-policy needs --reason TEXT (it is recorded in the journal and the report)")
    saved = _saved_plan_arg(args)
    paths = saved.paths if saved else (args or default_paths(ctx))
    files = _partial_files(saved, paths)
    # first, while this process has one thread: the parsing workers fork from it (as `plan` does)
    stream = ManifestStream(paths, allow_empty=allow_empty or files is not None, files=files).start()
    try:
        from reconciler.apply.run import ApplyRequest, run_apply
        from reconciler.config import load_settings
        from reconciler.plan.targeting import Targeting

        settings = load_settings(paths, config_file=config_file).with_overrides(
            parallelism=parallelism, poll_timeout=poll_timeout
        )
        if now or settings.now:
            from reconciler.errors import ConfigError

            raise ConfigError(
                f"{'--now' if now else 'RECONCILER_NOW'} sets the moment change windows are judged at; "
                "that is for `reconciler plan` (what-if) only. Apply judges windows by this machine's "
                f"clock, so nothing was written: {'drop --now' if now else 'unset RECONCILER_NOW'} and run "
                "apply inside a window"
            )
        request = ApplyRequest(
            saved,
            Targeting(tuple(target), tuple(exclude), selectors(selector)),
            tuple(paths),
            auto_approve,
            max_changes,
            on_stale,
            report_file,
            break_lock,
            sandbox,
            " ".join(["reconciler apply", *args]),
            lock_timeout,
            allow_plaintext_plan,
            no_encrypt,
            tuple((name, reason) for name in overrides),
            approvals=_approvals(ctx, saved),
        )
        return run_apply(request, stream, settings, ctx.out)
    finally:  # workers still parsing after an early error are stopped, not waited for
        stream.close()


def _partial_files(saved, paths) -> list | None:
    """A saved partial plan (--changed-since) is applied over the same scope, recomputed from the same
    base commit: its receipt then compares the same resources, and nothing outside them is touched."""
    if saved is None or saved.plan.scope is None:
        return None
    from reconciler.errors import PlanFileError
    from reconciler.plan.changes import changed_scope

    scope = changed_scope(tuple(paths), saved.plan.scope["base"])
    if scope is None:
        raise PlanFileError(
            "the saved plan is partial (--changed-since), and reconciler.yaml has changed since its base "
            "commit, which can change any resource's plan; nothing was written. Make a new plan"
        )
    return list(scope.files)


def _approvals(ctx: Context, saved):
    """The pull request's approvals, read afresh now (a review may have been dismissed since the plan):
    for a saved plan, the pull request and commit it is bound to; else this run's. None without a PR."""
    from reconciler.github.approvals import read_approvals

    binding = saved.binding if saved is not None else {}
    pr = binding.get("pull_request") if saved is not None else ctx.facts.pull_request
    commit = binding.get("commit") if saved is not None else (ctx.facts.expected_commit or ctx.facts.commit)
    if pr is None:
        return None
    approvals = read_approvals(ctx.facts, int(pr), commit, ctx.facts.operator)
    if approvals.error is None:
        who = ", ".join(a.login for a in approvals.approvals) or "nobody"
        ctx.out.info(f"Pull request #{pr}: approved on {str(commit or '?')[:12]} by {who}")
    return approvals


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@FORMAT
@click.pass_obj
def show(ctx: Context, file, fmt) -> int:
    """Render a saved plan."""
    from reconciler.config import plan_identity
    from reconciler.plan.saved import destination, load_plan

    saved = load_plan(file, plan_identity())
    ctx.out.info(
        f"Saved plan {saved.plan_id}: made {saved.created_at:%Y-%m-%d %H:%M %Z} by reconciler "
        f"{saved.tool_version}, {'EXPIRED' if saved.expired() else 'valid until'} {saved.expires_at:%Y-%m-%d %H:%M %Z}."
    )
    ctx.out.info(destination(saved.endpoints))
    emit_plan(ctx, saved.plan, fmt, environment=saved.endpoints)
    return 0
