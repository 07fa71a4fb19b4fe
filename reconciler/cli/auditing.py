"""`drift`: live state against the manifests, with who and when; `--adopt` writes live values back."""

from __future__ import annotations

import click

from reconciler.cli.app import (
    ALLOW_EMPTY,
    CONFIG,
    SANDBOX,
    Context,
    cli,
    default_paths,
    report_targeting,
    selectors,
    state_warnings,
)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown", "html", "openmetrics"]),
    default="text",
    show_default=True,
)
@click.option("--output", "output", type=click.Path(dir_okay=False), help="Write the report to this file.")
@click.option(
    "--also",
    "also",
    multiple=True,
    help="FORMAT=FILE: another report from the same read of live state "
    "(encrypted where recipients are set), e.g. --also html=drift.html.",
)
@click.option("--no-encrypt", is_flag=True, help="Write --output in plaintext even where recipients are set.")
@click.option("--adopt", is_flag=True, help="Write the live values of drifted declared fields into the manifests.")
@click.option("--dry-run", is_flag=True, help="With --adopt: print the change as a unified diff; write nothing.")
@click.option("--target", multiple=True, help="Only these addresses (globs), audited or adopted.")
@click.option("--exclude", multiple=True, help="Leave these addresses out (globs).")
@click.option("--selector", multiple=True, help="Only resources whose labels match k=v.")
@click.option("--no-history", is_flag=True, help="Do not record findings in the history (read only).")
@SANDBOX
@CONFIG
@ALLOW_EMPTY
@click.pass_obj
def drift(
    ctx: Context,
    paths,
    fmt,
    output,
    also,
    no_encrypt,
    adopt,
    dry_run,
    target,
    exclude,
    selector,
    no_history,
    sandbox,
    config_file,
    allow_empty,
) -> int:
    """Audit live state against the manifests: what differs, who changed it and when. Exit 2 on drift."""
    from reconciler.audit.drift import build_drift_report
    from reconciler.config import load_settings
    from reconciler.manifests import load_manifests
    from reconciler.plan.stream import read_selected
    from reconciler.plan.targeting import Targeting
    from reconciler.vendors.session import open_session

    paths = paths or default_paths(ctx)
    manifests = load_manifests(paths, allow_empty=allow_empty)
    settings = load_settings(paths, config_file=config_file)
    targeting = Targeting(tuple(target), tuple(exclude), selectors(selector))
    if adopt:
        return _adopt(ctx, manifests, settings, tuple(paths), sandbox, dry_run, targeting)
    if targeting != Targeting():  # the audit covers the selection, and says so (as plan does)
        from reconciler.plan.targeting import narrow, targeting_warnings

        total = len(manifests.registrations) + len(manifests.instructions)
        warnings = targeting_warnings(manifests, targeting)
        manifests = narrow(manifests, targeting)
        report_targeting(ctx, targeting, warnings, len(manifests.registrations) + len(manifests.instructions), total)
    with open_session(settings, sandbox=sandbox) as session:
        state_warnings(ctx, session, tuple(paths), sandbox, keeps_out=False)
        _, _, live = read_selected(manifests, session.vendors, settings, missing_ok=True)
        report = build_drift_report(
            manifests, live, session.vendors, settings.ignore, audit=_audit(ctx, session, tuple(paths))
        )
    if not (no_history or sandbox):
        _record_history(ctx, tuple(paths), config_file, report, narrowed=targeting != Targeting())
    extra = []
    for spec in also:
        kind, sep, target_file = spec.partition("=")
        if not sep or kind not in ("text", "json", "markdown", "html", "openmetrics") or not target_file:
            raise click.BadParameter(
                f"{spec!r} is not FORMAT=FILE (text, json, markdown, html, openmetrics)", param_hint="--also"
            )
        extra.append((kind, target_file))
    text = _render_drift(report, fmt)
    if output:
        _write_report(ctx, settings, output, text, fmt, encrypt=not no_encrypt, findings=len(report.findings))
    else:
        ctx.out.result(text)
    for kind, target_file in extra:
        _write_report(
            ctx, settings, target_file, _render_drift(report, kind), kind, encrypt=True, findings=len(report.findings)
        )
    return 2 if report.has_drift else 0


def _record_history(ctx: Context, paths: tuple[str, ...], config_file, report, *, narrowed: bool) -> None:
    """Findings that appeared or ended go into the workspace's history (audit/drift_trail.py). A pull
    request's audit only reads: nothing a pull request runs writes history."""
    import datetime as dt

    from reconciler.audit.drift_trail import record_drift
    from reconciler.cli.workspace import backend_for
    from reconciler.errors import StateBackendError

    if ctx.facts.pull_request is not None:
        ctx.out.info("History: not written (a pull request's audit only reads)")
        return
    try:
        history = backend_for(ctx, paths, config_file).history()
        assert history is not None
        try:
            sealed = record_drift(history, report, narrowed=narrowed, now=dt.datetime.now(dt.UTC))
        finally:
            history.close()
    except StateBackendError as e:
        ctx.out.error(f"Warning: the drift findings were not recorded in the history ({e})")
        return
    if sealed:
        ended = sum(1 for r in sealed if r.get("event") == "ended")
        ctx.out.info(f"History: {len(sealed) - ended} finding(s) first seen, {ended} ended; recorded")


def _audit(ctx: Context, session, paths: tuple[str, ...]) -> dict:
    """Who audited what: endpoints (hosts, never credentials), environment, the manifests' commit (from
    their own repository, `+dirty` with uncommitted changes), operator, CI run."""
    from reconciler.plan.saved import current_binding

    e = session.endpoints
    return {
        "environment": e.get("environment"),
        "orion": e.get("orion"),
        "sei": e.get("sei"),
        "commit": current_binding(None, ctx.facts, paths)["commit"],
        "operator": ctx.facts.operator,
        "ci_run_url": ctx.facts.run_url,
    }


def _render_drift(report, fmt: str) -> str:
    import json

    from reconciler.render.drift_report import (
        drift_to_document,
        render_drift_markdown,
        render_drift_openmetrics,
        render_drift_text,
    )

    if fmt == "json":
        return json.dumps(drift_to_document(report), indent=2, default=str) + "\n"
    if fmt == "markdown":
        return render_drift_markdown(report)
    if fmt == "html":
        from reconciler.render.html import render_drift_html

        return render_drift_html(report)
    if fmt == "openmetrics":
        return render_drift_openmetrics(report)
    return render_drift_text(report)


def _write_report(ctx: Context, settings, path: str, text: str, fmt: str, *, encrypt: bool, findings: int) -> None:
    from reconciler.files import write_private
    from reconciler.sealing import for_upload

    data, sealed = for_upload(text.encode("utf-8"), settings.plan_recipients if encrypt else ())
    write_private(path, data)  # client data: 0600
    ctx.out.info(f"Drift report ({fmt}{', encrypted' if sealed else ''}) written to {path}: {findings} finding(s).")


def _adopt(ctx: Context, manifests, settings, paths, sandbox: bool, dry_run: bool, targeting) -> int:
    """drift --adopt: read live state, rewrite only the drifted scalars; exit 2 if anything was left."""
    from reconciler.audit.adopt import plan_adoption, write_adoption
    from reconciler.plan.stream import read_selected
    from reconciler.vendors.session import open_session

    with open_session(settings, sandbox=sandbox) as session:
        _, _, live = read_selected(manifests, session.vendors, settings, targeting, missing_ok=True)
    adoption = plan_adoption(manifests, live, settings.ignore, paths, targeting.wants)
    for line in adoption.adopted:
        ctx.out.info(f"adopt {line}")
    for line in adoption.left:
        ctx.out.error(f"left  {line}")
    # one verdict whichever way it is run: what would be (or was) written, and what was left, counted
    left = (
        f"; {len(adoption.left)} drift(s) left as they are (above), so the manifests still differ"
        if adoption.left
        else ""
    )
    if dry_run:
        diff = adoption.diff()
        ctx.out.result(diff or f"Nothing to adopt{left or ': the manifests match live state'}.")
    else:
        written = write_adoption(adoption)
        ctx.out.info(
            f"Adopted into {len(written)} file(s): {', '.join(written)}{left}."
            if written
            else f"Nothing to adopt{left or ': the manifests match live state'}."
        )
    return 2 if adoption.left or (dry_run and adoption.diff()) else 0
