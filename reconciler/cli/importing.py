"""`import registration|tradebatch`: manifests written from live state."""

from __future__ import annotations

import click

from reconciler.cli.app import CONFIG, SANDBOX, Context, cli


@cli.group(name="import")
def import_() -> None:
    """Write manifests from live state (to adopt what already exists)."""


_OUTPUT = click.option(
    "--output", "output", type=click.Path(), help="A directory (one file per resource) or a file; default: stdout."
)


_FORCE = click.option(
    "--force", is_flag=True, help="Overwrite existing files, and import what the tree already manages."
)


@import_.command("registration")
@click.argument("ids", nargs=-1, required=True, type=int)
@_OUTPUT
@_FORCE
@SANDBOX
@CONFIG
@click.pass_obj
def import_registration(ctx: Context, ids, output, force, sandbox, config_file) -> int:
    """Import registrations by id (one bulk read for all of them)."""
    from reconciler.audit.importer import read_registrations, registration_manifest
    from reconciler.config import load_settings
    from reconciler.vendors.session import open_session

    settings = load_settings((), config_file=config_file)
    with open_session(settings, sandbox=sandbox) as session:
        live = read_registrations(session.vendors, list(ids), settings)
        origin = session.settings.orion.base_url
    if output is not None and not force:
        _refuse_managed(output, "registrationId", [str(i) for i in ids], "registration")
    docs = [
        (
            registration_manifest(live[i]),
            f"registration {i} (custodial account {live[i].get('custodialAccountNumber')})",
        )
        for i in ids
    ]
    _write_imported(ctx, docs, "Orion", origin, output, force)
    return 0


@import_.command("tradebatch")
@click.argument("batch_id")
@_OUTPUT
@_FORCE
@SANDBOX
@CONFIG
@click.pass_obj
def import_tradebatch(ctx: Context, batch_id, output, force, sandbox, config_file) -> int:
    """Import one SEI model change (all its tickets) by batchId."""
    from reconciler.audit.importer import read_tradebatch, tradebatch_manifest
    from reconciler.config import load_settings
    from reconciler.vendors.session import open_session

    settings = load_settings((), config_file=config_file)
    with open_session(settings, sandbox=sandbox) as session:
        rows = read_tradebatch(session.vendors, batch_id)
        origin = session.settings.sei.base_url
    if output is not None and not force:
        _refuse_managed(output, "batchId", [batch_id], "trade batch")
    tickets = len({r["tradeTicketId"] for r in rows})
    _write_imported(
        ctx,
        [(tradebatch_manifest(batch_id, rows), f"batch {batch_id} ({tickets} ticket{'s' * (tickets != 1)})")],
        "SEI",
        origin,
        output,
        force,
    )
    return 0


def _write_imported(ctx: Context, docs: list, vendor: str, origin: str, output: str | None, force: bool) -> None:
    from reconciler.audit.importer import render_imported, write_imported

    if output is None:
        ctx.out.result(render_imported(docs, vendor, origin))
        return
    for path in write_imported(docs, vendor, origin, output, force=force):
        ctx.out.info(f"wrote {path}")


def _refuse_managed(output: str, key: str, wanted: list[str], what: str) -> None:
    """Importing what the tree already declares would give it two manifests (the next validate blames the
    original): refuse, naming the file that manages it. The tree is the one `output` writes into."""
    from reconciler.audit.importer import managed_by
    from reconciler.errors import ConfigError

    found = managed_by(output, key, wanted)
    if found:
        listed = "; ".join(f"{what} {k} is managed by {path}" for k, path in found.items())
        raise ConfigError(f"{listed}; nothing was written (edit that manifest, or pass --force to import anyway)")
