"""`history`: the audit trail, read the way auditors read it; `verify`, `show RUN`, `export`.

Every subcommand only reads: with PostgreSQL a role with SELECT alone is enough (the read-only
backend URL a pull-request job holds).
"""

from __future__ import annotations

import datetime as dt

import click

from reconciler.cli.app import CONFIG, Context, cli, default_paths
from reconciler.cli.workspace import backend_for

PATH = click.option("--path", "paths", multiple=True, help="Manifest paths the workspace is for [default: manifests].")


def _moment(value: str | None, *, end: bool) -> str | None:
    """A date (2026-10-01) or an ISO 8601 time → the UTC text records carry. A date given as --until
    includes that whole day."""
    from reconciler.state.history import record_time

    if not value:
        return None
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            moment = dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time(), dt.UTC)
        else:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (2026-10-01) or an ISO 8601 time") from None
    return record_time(moment)


def _history(ctx: Context, paths: tuple[str, ...], config_file: str | None):
    history = backend_for(ctx, paths, config_file).history(readonly=True)
    if history is None:
        ctx.out.info("No history yet: the first apply or drift audit of this workspace starts it.")
    return history


def _selected(ctx: Context, paths, config_file, selection) -> list[dict]:
    history = _history(ctx, tuple(paths), config_file)
    if history is None:
        return []
    try:
        return history.records(selection)
    finally:
        history.close()


@cli.group(name="history", invoke_without_command=True)
@click.option("--since", help="From this date or time (UTC), inclusive.")
@click.option("--until", help="Up to this date (the whole day) or time (UTC).")
@click.option("--address", help="Only addresses matching this glob, e.g. 'TradeInstruction/*'.")
@click.option("--kind", type=click.Choice(["change", "drift"]), help="Only change or drift records.")
@click.option("--emergency", is_flag=True, help="Only changes applied under an override or a failed policy.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
@PATH
@CONFIG
@click.pass_context
def history_group(click_ctx, since, until, address, kind, emergency, fmt, paths, config_file) -> int | None:
    """Every change and every drift finding of this workspace, hash-chained (see `history verify`)."""
    if click_ctx.invoked_subcommand is not None:
        return None
    import json

    from reconciler.render.history import history_csv, history_text
    from reconciler.state.history import HistoryFilter

    ctx: Context = click_ctx.obj
    selection = HistoryFilter(_moment(since, end=False), _moment(until, end=True), address, kind, emergency)
    records = _selected(ctx, paths, config_file, selection)
    if fmt == "json":
        ctx.out.result(json.dumps(records, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        ctx.out.result(history_csv(records).rstrip("\n"))
    else:
        ctx.out.result(history_text(records))
    return 0


@history_group.command("verify")
@PATH
@CONFIG
@click.pass_obj
def history_verify(ctx: Context, paths, config_file) -> int:
    """Recompute the hash chain: exit 0 if intact, 1 naming the first record altered, removed or reordered."""
    from reconciler.escaping import terminal

    history = _history(ctx, tuple(paths), config_file)
    if history is None:
        return 0
    try:
        chain = history.verify()
    finally:
        history.close()
    if chain.intact:
        ctx.out.result(f"History intact: {chain.records} record(s); head {chain.head}")
        return 0
    ctx.out.error(
        terminal(
            f"Error: the history's chain is broken: {chain.broken}. The {chain.records - 1} record(s) before it "
            "are intact; keep this database as evidence and compare it with the last exported pack's records"
        )
    )
    return 1


@history_group.command("show")
@click.argument("run", type=int)
@PATH
@CONFIG
@click.pass_obj
def history_show(ctx: Context, run, paths, config_file) -> int:
    """One change run's full evidence: who, approvals, commit, policies, and every item with its fields."""
    from reconciler.render.history import run_text
    from reconciler.state.history import HistoryFilter

    records = _selected(ctx, paths, config_file, HistoryFilter(kind="change", run=run))
    ctx.out.result(run_text(run, records))
    return 0 if records else 1


@history_group.command("export")
@click.option("--since", help="From this date or time (UTC), inclusive.")
@click.option("--until", help="Up to this date (the whole day) or time (UTC).")
@click.option("--output", required=True, type=click.Path(file_okay=False), help="The folder to write the pack to.")
@click.option("--no-encrypt", is_flag=True, help="Write the pack in plaintext even where recipients are set.")
@PATH
@CONFIG
@click.pass_obj
def history_export(ctx: Context, since, until, output, no_encrypt, paths, config_file) -> int:
    """An evidence pack for an auditor: records (JSON, CSV), the chain's head and verify result, an HTML index."""
    from reconciler.audit.evidence_pack import write_pack
    from reconciler.config import load_settings
    from reconciler.state.history import HistoryFilter

    settings = load_settings(tuple(paths) or default_paths(ctx), config_file=config_file)
    history = _history(ctx, tuple(paths), config_file)
    if history is None:
        return 1
    try:
        chain = history.verify()
        selection = HistoryFilter(_moment(since, end=False), _moment(until, end=True))
        records = history.records(selection)
    finally:
        history.close()
    written = write_pack(
        output,
        records,
        chain,
        period=(since, until),
        recipients=() if no_encrypt else settings.plan_recipients,
    )
    for name in written:
        ctx.out.info(f"wrote {name}")
    ctx.out.result(
        f"Evidence pack: {len(records)} record(s) in {output}; chain {'intact' if chain.intact else 'BROKEN'}"
    )
    return 0 if chain.intact else 1
