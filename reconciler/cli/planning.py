"""`validate` and `plan`: check the manifests; read, diff and print the plan (never writes to an API)."""

from __future__ import annotations

import time

import click

from reconciler.cli.app import (
    ALLOW_EMPTY,
    CONFIG,
    FORMAT,
    SANDBOX,
    Context,
    cli,
    default_paths,
    emit_plan,
    now_for,
    report_targeting,
    selectors,
    state_warnings,
)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@ALLOW_EMPTY
@click.pass_obj
def validate(ctx: Context, paths: tuple[str, ...], allow_empty: bool) -> int:
    """Load and check manifests (default: manifests/). No network."""
    from reconciler.manifests import ManifestStream

    stream = ManifestStream(paths or default_paths(ctx), allow_empty=allow_empty)
    for _ in stream:  # each resource checked, counted and dropped: memory does not grow with the tree
        pass
    ctx.out.info(
        f"OK: {len(stream.files)} files, {stream.registrations} registrations, "
        f"{stream.batches} trade batches ({stream.instructions} instructions), "
        f"{stream.registrations + stream.batches} resources valid."
    )
    return 0


def _scope(ctx: Context, paths, since: str):
    """What a partial plan reads (plan/changes.py), or None when only a full plan will do (said why)."""
    from reconciler.plan.changes import changed_scope

    scope = changed_scope(tuple(paths), since)
    if scope is None:
        ctx.out.info(
            f"reconciler.yaml changed since {since}: it can change any resource's plan, so this is a full plan"
        )
    return scope


def _approvals(ctx: Context, policies, paths: tuple[str, ...]):
    """The pull request's approvals on the planned commit, when a policy uses them or a PR is known
    (they are bound into a saved plan); None otherwise. Plan never needs them to be complete: a rule
    that uses approvals shows what is missing."""
    from reconciler.github.approvals import read_approvals
    from reconciler.plan.saved import current_binding

    if ctx.facts.pull_request is None and not any(p.approvals for p in policies):
        return None
    commit = current_binding(None, ctx.facts, paths)["commit"]
    return read_approvals(ctx.facts, ctx.facts.pull_request, commit, None)


def _server_validate(ctx: Context, vendors, plan) -> list:
    """Orion's own dry run for every changed registration: rejections are shown before review."""
    from reconciler.escaping import terminal
    from reconciler.vendors.reads import server_validate

    verdicts = server_validate(vendors, plan.changes)
    for v in verdicts:
        if v.error is not None:
            ctx.out.error(f"Warning: {v.address}: Orion's Validate could not be asked ({terminal(v.error, 200)})")
        elif not v.is_valid:
            ctx.out.error(f"✗ {v.address}: Orion would reject it: {terminal(v.message, 300)}  # {v.source}")
    rejected = sum(v.is_valid is False for v in verdicts)
    ctx.out.info(
        f"Server-side validation: {rejected} of {len(verdicts)} changed registration(s) would be rejected by Orion."
    )
    return verdicts


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Save the plan for `apply FILE` (mode 0600).")
@click.option(
    "--encrypt-to",
    "encrypt_to",
    multiple=True,
    help="An age recipient (age1…) to encrypt the saved plan to "
    "(adds to plan_recipients / RECONCILER_PLAN_RECIPIENTS).",
)
@click.option("--no-encrypt", is_flag=True, help="Write the saved plan in plaintext even where recipients are set.")
@FORMAT
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes (or conflicts), 0 when none.")
@click.option("--target", multiple=True, help="Only these addresses (globs allowed), e.g. 'SleeveRegistration/west-*'.")
@click.option("--exclude", multiple=True, help="Leave these addresses out (globs allowed).")
@click.option("--selector", multiple=True, help="Only resources whose labels match k=v (repeatable; all must match).")
@SANDBOX
@CONFIG
@ALLOW_EMPTY
@click.option("--now", help="Evaluate change windows as of this moment (ISO 8601 with offset) [env RECONCILER_NOW].")
@click.option("--server-validate", is_flag=True, help="Ask Orion's Validate about every changed registration.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Where checked manifests are kept between runs [env RECONCILER_CACHE_DIR; default ~/.cache/reconciler].",
)
@click.option("--no-cache", is_flag=True, help="Check every manifest file again; read and write no cache.")
@click.option(
    "--changed-since",
    "changed_since",
    metavar="REF",
    help="Plan only what changed since this Git revision (e.g. the PR's base): a partial plan.",
)
@click.pass_obj
def plan(
    ctx: Context,
    paths,
    out_file,
    encrypt_to,
    no_encrypt,
    fmt,
    detailed_exitcode,
    target,
    exclude,
    selector,
    sandbox,
    config_file,
    allow_empty,
    now,
    server_validate,
    cache_dir,
    no_cache,
    changed_since,
) -> int:
    """Read live state, diff it against the manifests, print the plan. Never writes to an API."""
    from dataclasses import replace

    from reconciler.manifests import ManifestStream

    t_start = time.perf_counter()
    paths = paths or default_paths(ctx)
    scope = _scope(ctx, paths, changed_since) if changed_since else None
    if scope is not None and not scope.changed and not scope.templates and not scope.gone:
        ctx.out.result(f"No manifest changed since {changed_since}: nothing to plan (a full plan shows drift).")
        return 0
    # first, while this process has one thread and few modules: the parsing workers fork from it
    files = list(scope.files) if scope is not None else None
    cache = None if no_cache else str(cache_dir or ctx.facts.cache_dir)  # plan only: apply never reads it
    stream = ManifestStream(paths, allow_empty=allow_empty or scope is not None, files=files, cache=cache).start()

    from reconciler.config import load_settings
    from reconciler.manifests.policy import evaluate_policies
    from reconciler.plan.stages import build_stages
    from reconciler.plan.stream import plan_stream
    from reconciler.plan.targeting import Targeting
    from reconciler.vendors.session import open_session

    try:
        settings = load_settings(paths, config_file=config_file)
        targeting = Targeting(tuple(target), tuple(exclude), selectors(selector))
        with open_session(settings, sandbox=sandbox) as session:
            in_doubt = state_warnings(ctx, session, tuple(paths), sandbox)
            ctx.out.info(session.environment_line)
            ctx.out.info(
                f"Checking {len(stream.files)} manifest files and reading live state"
                f"{' from the in-process sandbox' if sandbox else ''}, side by side…"
            )
            # invalid manifests never reach the network: reads carry only ids of documents that passed
            # their checks, and a tree with any error is refused before anything is planned
            streamed = plan_stream(
                tuple(paths),
                session.vendors,
                session.settings,
                targeting=targeting,
                leave_out=frozenset(in_doubt.busy_addresses),
                stream=stream,
                payloads=server_validate,  # merged bodies only for Orion's Validate: apply builds its own fresh
            )
            report_targeting(
                ctx, targeting, streamed.warnings, streamed.selected, streamed.registrations + streamed.instructions
            )
            endpoints = session.endpoints
            t_plan = time.perf_counter()
            moment = now_for(settings, now)
            approvals = _approvals(ctx, streamed.policies, tuple(paths))
            partial = replace(streamed.plan, scope=scope.as_dict() if scope is not None else None)
            result = replace(
                partial,
                policy_results=evaluate_policies(partial, streamed.policies, moment, approvals),
                windows_as_of=moment.isoformat(timespec="seconds") if (now or settings.now) else None,
            )
            checks = _server_validate(ctx, session.vendors, result) if server_validate else None
    finally:  # workers still parsing after an early error are stopped, not waited for
        stream.close()
    t_render = time.perf_counter()
    emit_plan(ctx, result, fmt, build_stages(result, in_doubt, parallelism=settings.parallelism), endpoints, checks)
    if ctx.facts.stats:
        import resource

        from reconciler.plan.diff import deepdiff_calls

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ctx.out.info(
            f"stats: manifests+reads+diff (overlapped) {t_plan - t_start:.2f}s, policies "
            f"{t_render - t_plan:.2f}s, render {time.perf_counter() - t_render:.2f}s; "
            f"deepdiff calls {deepdiff_calls()}; peak RSS of this process {rss:.0f} MiB"
        )
    if out_file:
        from reconciler.plan.saved import current_binding, save_plan
        from reconciler.sealing import parse_recipients

        recipients = () if no_encrypt else settings.plan_recipients + parse_recipients(encrypt_to, "--encrypt-to")
        plan_id = save_plan(
            out_file,
            result,
            streamed.digest,
            tuple(paths),
            batch_size=settings.batch_size,
            expiry_hours=settings.plan_expiry_hours,
            endpoints=endpoints,
            targeting={
                "targets": list(target),
                "excludes": list(exclude),
                "selectors": [list(kv) for kv in selectors(selector)],
            },
            binding={
                **current_binding(endpoints.get("environment"), ctx.facts, tuple(paths)),
                **({"approvers": approvals.as_list(), "author": approvals.author} if approvals else {}),
            },
            recipients=recipients,
        )
        how = f"encrypted to {len(recipients)} recipient(s)" if recipients else "plaintext"
        ctx.out.info(
            f"Saved the plan to {out_file} ({how}; id {plan_id}, valid {settings.plan_expiry_hours:g} h). "
            f"Apply exactly this plan with: reconciler apply {out_file}"
        )
    hard = [r for r in result.policy_results if not r.passed and r.enforcement == "hard"]
    if hard:
        ctx.out.error(
            f"Error: the plan fails {len(hard)} hard policy rule(s) ("
            + ", ".join(f"{r.policy} {r.rule}" for r in hard)
            + "); apply would refuse it"
        )
        return 1
    if in_doubt.busy and detailed_exitcode:
        return 2  # not "no changes": what is in doubt was not checked
    return 2 if detailed_exitcode and result.has_changes else 0
