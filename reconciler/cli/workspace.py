"""`lock` and `journal`: who holds a workspace, and the writes whose outcome is in doubt."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.app import CONFIG, Context, cli, default_paths


def backend_for(ctx: Context, paths: tuple[str, ...], config_file: str | None, *, any_workspace: bool = False):
    """The state backend of the workspace for `paths` and the configured endpoints (no network to vendors).
    `any_workspace`: with the shared backend, where the endpoints are not configured, the database as a
    whole (lock status lists every workspace in it, and needs no vendor URL to do so)."""
    from reconciler.config import load_settings, require_safe_url
    from reconciler.state.backend import open_backend
    from reconciler.state.workspace import Workspace, workspace_for, workspace_root

    paths = paths or default_paths(ctx)
    settings = load_settings(paths, config_file=config_file)
    if any_workspace and settings.backend_url is not None and not (settings.orion.base_url and settings.sei.base_url):
        everyone = Workspace("", "(every workspace in the database)", Path(), workspace_root(paths))
        return open_backend(settings, everyone, facts=ctx.facts)
    ws = workspace_for(
        paths,
        require_safe_url(settings.orion.base_url, "ORION_BASE_URL"),
        require_safe_url(settings.sei.base_url, "SEI_BASE_URL"),
        settings.workspace,
    )
    return open_backend(settings, ws, facts=ctx.facts)


def _journal_for(ctx: Context, paths: tuple[str, ...], config_file: str | None):
    """The workspace and its journal (None if none yet). A damaged local journal: what can still be read
    from it is printed, then the error says which file and what to do."""
    from reconciler.errors import StateBackendError
    from reconciler.escaping import terminal
    from reconciler.state.sqlite import salvage

    backend = backend_for(ctx, paths, config_file)
    try:
        journal = backend.read_journal()
    except StateBackendError:
        if not backend.shared and backend.workspace.journal_path.exists():
            ctx.out.result(
                "\n".join(
                    [
                        f"What can still be read from {backend.workspace.journal_path}:",
                        *(f"  {terminal(line, 400)}" for line in salvage(backend.workspace.journal_path)),
                    ]
                )
            )
        raise
    for notice in backend.notices:
        ctx.out.info(notice)
    return backend.workspace, journal


@cli.group(name="lock")
def lock_group() -> None:
    """Who holds which workspace (`status`), and clearing a dead holder's record (`release`)."""


@lock_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the leases as JSON.")
@click.option("--path", "paths", multiple=True, help="Manifest paths the workspace is for [default: manifests].")
@CONFIG
@click.pass_obj
def lock_status(ctx: Context, as_json, paths, config_file) -> int:
    """Show who holds the workspace lock (with PostgreSQL: every workspace in the database)."""
    import json

    from reconciler.escaping import terminal

    backend = backend_for(ctx, tuple(paths), config_file, any_workspace=True)
    leases = backend.leases()
    if as_json:
        ctx.out.result(
            json.dumps({"backend": backend.name, "workspace": backend.workspace.key, "leases": leases}, indent=2)
        )
        return 0
    if not leases and not backend.workspace.key:
        ctx.out.result(f"No apply holds any workspace in the database ({backend.name}).")
    elif not leases:
        ctx.out.result(f"No apply holds the workspace {terminal(backend.workspace.label)} ({backend.name}).")
    for r in leases:
        state = "held" if r["alive"] else "free (its holder is gone; `reconciler lock release` clears the record)"
        ctx.out.result(
            f"{terminal(r.get('label') or r['workspace'])}: {state}; pid {r.get('pid')} on "
            f"{terminal(r.get('host'))}, user {terminal(r.get('user'))}, since {r.get('started')}"
            + (f", heartbeat {r.get('heartbeat')}" if r.get("heartbeat") else "")
            + (f", run {terminal(r.get('ci_run_url'))}" if r.get("ci_run_url") else "")
            + (f", plan {terminal(r.get('plan_digest'))}" if r.get("plan_digest") else "")
        )
    return 0


@lock_group.command("release")
@click.option("--path", "paths", multiple=True, help="Manifest paths the workspace is for [default: manifests].")
@CONFIG
@click.pass_obj
def lock_release(ctx: Context, paths, config_file) -> int:
    """Clear the lease record of a holder whose process or session is gone. A live holder is never broken."""
    from reconciler.errors import LockError

    backend = backend_for(ctx, tuple(paths), config_file)
    live = [r for r in backend.leases() if r["workspace"] == backend.workspace.key and r["alive"]]
    if live:
        raise LockError(
            f"the workspace is held by a live apply (pid {live[0].get('pid')} on {live[0].get('host')}); "
            "a live holder's lock is never released"
        )
    dead = backend.release_dead()
    ctx.out.info(f"cleared {len(dead)} record(s) of dead holders" if dead else "nothing to release: no holder record")
    return 0


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@click.option("--path", "paths", multiple=True, help="Manifest paths the workspace is for [default: manifests].")
@CONFIG
@click.pass_context
def journal(click_ctx, as_json, paths, config_file) -> int:
    """List the writes whose outcome is in doubt (the journal of this workspace)."""
    if click_ctx.invoked_subcommand is not None:
        return 0
    import json

    from reconciler.escaping import terminal

    ctx: Context = click_ctx.obj
    ws, j = _journal_for(ctx, tuple(paths), config_file)
    entries = j.in_doubt() if j else []
    if j:
        j.close()
    if as_json:
        ctx.out.result(
            json.dumps(
                [
                    {
                        "kind": e.kind,
                        "key": e.key,
                        "addresses": list(e.addresses),
                        "state": e.state,
                        "since": e.since,
                        "detail": e.detail,
                    }
                    for e in entries
                ],
                indent=2,
            )
        )
        return 0
    if not entries:
        ctx.out.result(f"Nothing in doubt in the workspace {terminal(ws.label)}.")
        return 0
    lines = [f"In doubt in the workspace {terminal(ws.label)}:"]
    for e in entries:
        lines.append(
            f"  {e.kind} {terminal(e.key)} ({e.state} since {e.since}): {terminal(', '.join(e.addresses), 300)}"
            + (f" — {terminal(e.detail, 300)}" if e.detail else "")
        )
    lines.append(
        "Apply resolves these from live state first. To decide one yourself: "
        "reconciler journal resolve KIND KEY --as applied|absent --reason TEXT"
    )
    ctx.out.result("\n".join(lines))
    return 0


@journal.command("resolve")
@click.argument("kind", type=click.Choice(["batch", "ticket"]))
@click.argument("key")
@click.option(
    "--as",
    "outcome",
    required=True,
    type=click.Choice(["applied", "absent"]),
    help="What you established: the write took effect (applied), or it did not (absent).",
)
@click.option("--reason", required=True, help="Why: recorded in the journal with who and when.")
@click.option("--path", "paths", multiple=True, help="Manifest paths the workspace is for [default: manifests].")
@CONFIG
@click.pass_obj
def journal_resolve(ctx: Context, kind, key, outcome, reason, paths, config_file) -> int:
    """Resolve one in-doubt write by hand, with a recorded reason."""
    from reconciler.errors import ReconcilerError

    j = backend_for(ctx, tuple(paths), config_file).journal()
    entries = {(e.kind, e.key) for e in j.in_doubt()}
    if (kind, key) not in entries:
        j.close()
        raise ReconcilerError(f"no {kind} {key} is in doubt in this workspace (see `reconciler journal`)")
    who = ctx.facts.operator
    j.resolve(kind, key, outcome, reason, who)
    j.close()
    ctx.out.info(f"resolved {kind} {key} as {outcome} ({reason}), recorded for {who}")
    return 0
