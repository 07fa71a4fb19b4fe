"""The command line: parse, call the library, print what the renderers return, map errors to exit codes.

The only module that imports click. Exit codes are the contract of SPEC.md §3: 0 success/no changes,
1 error, 2 changes or drift, 3 apply ended with failed or unknown items. click's own usage errors
(exit 2 by default) are mapped to 1, because 2 means "changes present" here.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass

import click

from reconciler import __version__
from reconciler.console import Output
from reconciler.errors import ManifestError, ReconcilerError

__all__ = ["main", "run"]

DEFAULT_PATHS = ("manifests",)


@dataclass
class Context:
    debug: bool
    out: Output


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None, out: Output | None = None) -> int:
    """Run one command; return its exit code. Never lets a traceback out unless --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args  # accepted before or after the subcommand
    args = [a for a in args if a != "--debug"]
    out = out or Output()
    _configure_logging(debug)
    try:
        rv = cli.main(args=args, prog_name="reconciler", standalone_mode=False, obj=Context(debug, out))
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        out.error("Aborted.")
        return 1
    except click.ClickException as e:
        out.error(f"Error: {e.format_message()}  (see `reconciler --help`)")
        return 1
    except ManifestError as e:
        for d in e.diagnostics:
            out.error(str(d).replace("\n", "\\n"))  # one diagnostic, one line, whatever it quotes
        out.error(f"Error: {e}")
        return e.exit_code
    except ReconcilerError as e:
        if debug:
            out.error(traceback.format_exc())
        out.error(f"Error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        out.error("Interrupted.")
        return 130
    except Exception as e:  # a bug: say so plainly, keep the traceback for --debug
        if debug:
            out.error(traceback.format_exc())
        out.error(f"Error: internal error {type(e).__name__}: {e}  (rerun with --debug and report it)")
        return 1


def _configure_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    # httpx logs every request URL at INFO and httpcore logs raw headers at DEBUG: keep them quiet,
    # our providers log requests themselves with secrets masked.
    for name in ("httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Manage Orion sleeve registrations and SEI trade instructions as code.

    Add --debug anywhere for tracebacks and request logs (secrets masked).
    """


_ALLOW_EMPTY = click.option("--allow-empty", is_flag=True,
                            help="Accept a manifests tree that declares no resource (otherwise an error).")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@_ALLOW_EMPTY
@click.pass_obj
def validate(ctx: Context, paths: tuple[str, ...], allow_empty: bool) -> int:
    """Load and check manifests (default: manifests/). No network."""
    from reconciler.manifests import load_manifests

    manifests = load_manifests(paths or DEFAULT_PATHS, allow_empty=allow_empty)
    n = len(manifests.registrations) + len(manifests.batches)
    ctx.out.info(f"OK: {len(manifests.files)} files, {len(manifests.registrations)} registrations, "
                 f"{len(manifests.batches)} trade batches ({len(manifests.instructions)} instructions), "
                 f"{n} resources valid.")
    return 0


def _selectors(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = []
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{v!r} is not k=v", param_hint="--selector")
        out.append((key, value))
    return tuple(out)


def now_for(settings, flag: str | None):
    """The moment windows are evaluated at: --now, else RECONCILER_NOW, else the clock."""
    import datetime as dt

    from reconciler.config import parse_now

    return parse_now(flag, "--now") if flag else (settings.now or dt.datetime.now(dt.timezone.utc))


def _server_validate(ctx: Context, vendors, plan) -> None:
    """Orion's own dry run for every changed registration: rejections are shown before review."""
    from reconciler.errors import ApiError
    from reconciler.escaping import terminal
    from reconciler.model import Action

    rejected = 0
    for c in plan.changes:
        if c.action is not Action.UPDATE:
            continue
        try:
            answer = vendors.orion.validate(c.payload)
        except ApiError as e:
            ctx.out.error(f"Warning: {c.address}: Orion's Validate could not be asked ({terminal(e, 200)})")
            continue
        if not answer.get("isValid", True):
            rejected += 1
            ctx.out.error(f"✗ {c.address}: Orion would reject it: {terminal(answer.get('validationMessage'), 300)}"
                          f"  # {c.source}")
    ctx.out.info(f"Server-side validation: {rejected} of {sum(c.action is Action.UPDATE for c in plan.changes)} "
                 "changed registration(s) would be rejected by Orion.")


def _select_or_refuse(ctx: Context, manifests, targeting):
    """The targeted resources; every pattern that matches nothing is named, and an empty selection refused."""
    from reconciler.plan import select, targeting_warnings

    regs, instrs = select(manifests, targeting)
    _report_targeting(ctx, targeting, targeting_warnings(manifests, targeting), len(regs) + len(instrs),
                      len(manifests.registrations) + len(manifests.instructions))
    return regs, instrs


def _report_targeting(ctx: Context, targeting, warnings, selected: int, total: int) -> None:
    from reconciler.errors import ConfigError

    for w in warnings:
        ctx.out.error(f"Warning: {w}")
    if targeting.targets or targeting.excludes or targeting.selectors:
        if not selected and total:
            raise ConfigError("--target/--exclude/--selector leave no resource to check; nothing was planned")
        ctx.out.info(f"Targeting: {selected} of {total} resources are checked; the rest are not.")


def _emit_plan(ctx: Context, plan, fmt: str, stages=None, environment: dict | None = None) -> None:
    from reconciler.render import plan_to_document, render_plan_markdown, render_plan_text

    if fmt == "json":
        import json

        ctx.out.result(json.dumps(plan_to_document(plan), indent=2, default=str))
    elif fmt == "markdown":
        ctx.out.result("\n\n---\n\n".join(render_plan_markdown(plan, environment=environment)))
    else:
        ctx.out.result(render_plan_text(plan, stages))


_FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text",
                       show_default=True)
_SANDBOX = click.option("--sandbox", is_flag=True, help="Start the built-in emulator in-process (demo state) and use it.")
_CONFIG = click.option("--config", "config_file", type=click.Path(dir_okay=False), help="reconciler.yaml to use.")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Save the plan for `apply FILE` (mode 0600).")
@click.option("--encrypt-to", "encrypt_to", multiple=True, help="An age recipient (age1…) to encrypt the saved plan to "
              "(adds to plan_recipients / RECONCILER_PLAN_RECIPIENTS).")
@click.option("--no-encrypt", is_flag=True, help="Write the saved plan in plaintext even where recipients are set.")
@_FORMAT
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes (or conflicts), 0 when none.")
@click.option("--target", multiple=True, help="Only these addresses (globs allowed), e.g. 'SleeveRegistration/west-*'.")
@click.option("--exclude", multiple=True, help="Leave these addresses out (globs allowed).")
@click.option("--selector", multiple=True, help="Only resources whose labels match k=v (repeatable; all must match).")
@_SANDBOX
@_CONFIG
@_ALLOW_EMPTY
@click.option("--now", help="Evaluate change windows as of this moment (ISO 8601 with offset) [env RECONCILER_NOW].")
@click.option("--server-validate", is_flag=True, help="Ask Orion's Validate about every changed registration.")
@click.pass_obj
def plan(ctx: Context, paths, out_file, encrypt_to, no_encrypt, fmt, detailed_exitcode, target, exclude, selector,
         sandbox, config_file, allow_empty, now, server_validate) -> int:
    """Read live state, diff it against the manifests, print the plan. Never writes to an API."""
    from dataclasses import replace

    from reconciler.backend import open_backend
    from reconciler.config import load_settings
    from reconciler.manifests import ManifestStream
    from reconciler.pipeline import plan_stream
    from reconciler.plan import Targeting
    from reconciler.policy import evaluate_policies
    from reconciler.recovery import in_doubt_view
    from reconciler.session import open_session
    from reconciler.stages import build_stages

    t_start = time.perf_counter()
    paths = paths or DEFAULT_PATHS
    stream = ManifestStream(paths, allow_empty=allow_empty)   # raises for a path that does not exist
    settings = load_settings(paths, config_file=config_file)
    targeting = Targeting(tuple(target), tuple(exclude), _selectors(selector))
    with open_session(settings, sandbox=sandbox) as session:
        with session.workspace(tuple(paths)) as ws:
            backend = open_backend(session.settings, ws, sandbox=sandbox)
            journal = backend.journal(readonly=True)
            in_doubt = in_doubt_view(journal)
            if journal is not None:
                journal.close()
            for lease in backend.leases():
                if lease["workspace"] == ws.key and lease["alive"]:
                    ctx.out.error(f"Warning: an apply of this workspace is running: pid {lease.get('pid')} on "
                                  f"{lease.get('host')} since {lease.get('started')}; this plan may be outdated "
                                  "as soon as it is printed.")
        if in_doubt.busy:  # every plan keeps writes in doubt out until apply has resolved them
            ctx.out.error(f"Warning: {len(in_doubt.busy)} resource(s) have writes in doubt from an earlier apply "
                          "(see `reconciler journal`); they are left out of this plan until apply resolves them.")
        ctx.out.info(session.environment_line)
        ctx.out.info(f"Checking {len(stream.files)} manifest files and reading live state"
                     f"{' from the in-process sandbox' if sandbox else ''}, side by side…")
        # invalid manifests never reach the network: reads carry only ids of documents that passed
        # their checks, and a tree with any error is refused before anything is planned
        streamed = plan_stream(tuple(paths), session.vendors, session.settings, targeting=targeting,
                               leave_out=frozenset(in_doubt.busy_addresses), stream=stream)
        _report_targeting(ctx, targeting, streamed.warnings, streamed.selected,
                          streamed.registrations + streamed.instructions)
        endpoints = session.endpoints
        t_plan = time.perf_counter()
        result = replace(streamed.plan, policy_results=evaluate_policies(streamed.plan, streamed.policies,
                                                                          now_for(settings, now)))
        if server_validate:
            _server_validate(ctx, session.vendors, result)
    t_render = time.perf_counter()
    _emit_plan(ctx, result, fmt, build_stages(result, in_doubt, parallelism=settings.parallelism), endpoints)
    if os.environ.get("RECONCILER_STATS"):
        import resource

        from reconciler.diff import deepdiff_calls

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ctx.out.info(f"stats: manifests+reads+diff (overlapped) {t_plan - t_start:.2f}s, policies "
                     f"{t_render - t_plan:.2f}s, render {time.perf_counter() - t_render:.2f}s; "
                     f"deepdiff calls {deepdiff_calls()}; peak RSS of this process {rss:.0f} MiB")
    if out_file:
        from reconciler.planfile import current_binding, save_plan
        from reconciler.sealing import parse_recipients

        recipients = () if no_encrypt else settings.plan_recipients + parse_recipients(encrypt_to, "--encrypt-to")
        plan_id = save_plan(out_file, result, streamed.digest, tuple(paths), batch_size=settings.batch_size,
                            expiry_hours=settings.plan_expiry_hours, endpoints=endpoints,
                            targeting={"targets": list(target), "excludes": list(exclude),
                                       "selectors": [list(kv) for kv in _selectors(selector)]},
                            binding=current_binding(endpoints.get("environment")), recipients=recipients)
        how = f"encrypted to {len(recipients)} recipient(s)" if recipients else "plaintext"
        ctx.out.info(f"Saved the plan to {out_file} ({how}; id {plan_id}, valid {settings.plan_expiry_hours:g} h). "
                     f"Apply exactly this plan with: reconciler apply {out_file}")
    hard = [r for r in result.policy_results if not r.passed and r.enforcement == "hard"]
    if hard:
        ctx.out.error(f"Error: the plan fails {len(hard)} hard policy rule(s) ("
                      + ", ".join(f"{r.policy} {r.rule}" for r in hard) + "); apply would refuse it")
        return 1
    if in_doubt.busy and detailed_exitcode:
        return 2  # not "no changes": what is in doubt was not checked
    return 2 if detailed_exitcode and result.has_changes else 0


def _saved_plan_arg(args: tuple[str, ...]):
    """A single argument whose *content* is a saved plan (its name does not matter)."""
    from pathlib import Path

    from reconciler.config import plan_identity
    from reconciler.planfile import load_plan
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
@click.option("--poll-timeout", type=click.FloatRange(0), help="Seconds to wait for an Orion batch [env RECONCILER_POLL_TIMEOUT].")
@click.option("--report", "report_file", type=click.Path(dir_okay=False), help="Write the JSON apply report here.")
@click.option("--break-lock", is_flag=True, help="Kept for old scripts: the lock is released by the kernel when its "
              "holder dies, and a live holder is never broken.")
@click.option("--override-policy", "overrides", multiple=True, help="Apply although this soft policy fails (needs --reason).")
@click.option("--reason", help="Why the soft policies named by --override-policy are overridden (recorded).")
@click.option("--now", help="Evaluate change windows as of this moment (ISO 8601 with offset) [env RECONCILER_NOW].")
@click.option("--allow-plaintext-plan", is_flag=True, help="In CI with recipients configured, accept a plaintext plan.")
@click.option("--no-encrypt", is_flag=True, help="Write the apply report in plaintext even where recipients are set.")
@click.option("--lock-timeout", type=click.FloatRange(0), default=0, show_default=True,
              help="Seconds to wait for another apply of this workspace to finish.")
@click.option("--on-stale", type=click.Choice(["fail", "replan"]), default="fail", show_default=True,
              help="A stale saved plan: refuse (fail), or say why and plan afresh from its manifests (replan).")
@click.option("--target", multiple=True, help="When planning: only these addresses (globs).")
@click.option("--exclude", multiple=True, help="When planning: leave these addresses out (globs).")
@click.option("--selector", multiple=True, help="When planning: only resources whose labels match k=v.")
@_SANDBOX
@_CONFIG
@_ALLOW_EMPTY
@click.pass_obj
def apply(ctx: Context, args, auto_approve, parallelism, max_changes, poll_timeout, report_file, break_lock,
          overrides, reason, now, allow_plaintext_plan, no_encrypt, lock_timeout, on_stale, target, exclude, selector, sandbox, config_file, allow_empty) -> int:
    """Apply a saved plan (FILE), or plan PATHs and apply after confirmation."""
    from reconciler.config import load_settings
    from reconciler.manifests import load_manifests
    from reconciler.plan import Targeting
    from reconciler.runs import ApplyRequest, run_apply

    saved = _saved_plan_arg(args)
    paths = saved.paths if saved else (args or DEFAULT_PATHS)
    manifests = load_manifests(paths, allow_empty=allow_empty)
    if not saved:
        _select_or_refuse(ctx, manifests, Targeting(tuple(target), tuple(exclude), _selectors(selector)))
    settings = load_settings(paths, config_file=config_file).with_overrides(
        parallelism=parallelism, poll_timeout=poll_timeout)
    request = ApplyRequest(saved, Targeting(tuple(target), tuple(exclude), _selectors(selector)), tuple(paths),
                           auto_approve, max_changes, on_stale, report_file, break_lock, sandbox,
                           "reconciler apply " + " ".join(args), lock_timeout, allow_plaintext_plan, no_encrypt,
                           tuple((name, reason) for name in overrides),
                           now_for(settings, now) if (now or settings.now) else None)
    if overrides and not reason:
        raise click.UsageError("--override-policy needs --reason TEXT (it is recorded in the journal and the report)")
    return run_apply(request, manifests, settings, ctx.out)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown", "html", "openmetrics"]), default="text",
              show_default=True)
@click.option("--output", "output", type=click.Path(dir_okay=False), help="Write the report to this file.")
@click.option("--also", "also", multiple=True, help="FORMAT=FILE: another report from the same read of live state "
              "(encrypted where recipients are set), e.g. --also html=drift.html.")
@click.option("--no-encrypt", is_flag=True, help="Write --output in plaintext even where recipients are set.")
@click.option("--adopt", is_flag=True, help="Write the live values of drifted declared fields into the manifests.")
@click.option("--dry-run", is_flag=True, help="With --adopt: print the change as a unified diff; write nothing.")
@click.option("--target", multiple=True, help="With --adopt: only these addresses (globs).")
@click.option("--exclude", multiple=True, help="With --adopt: leave these addresses out (globs).")
@click.option("--selector", multiple=True, help="With --adopt: only resources whose labels match k=v.")
@_SANDBOX
@_CONFIG
@_ALLOW_EMPTY
@click.pass_obj
def drift(ctx: Context, paths, fmt, output, also, no_encrypt, adopt, dry_run, target, exclude, selector, sandbox,
          config_file, allow_empty) -> int:
    """Audit live state against the manifests: what differs, who changed it and when. Exit 2 on drift."""
    from reconciler.config import load_settings
    from reconciler.drift import build_drift_report
    from reconciler.plan import Targeting
    from reconciler.live import read_live_state
    from reconciler.manifests import load_manifests
    from reconciler.session import open_session

    paths = paths or DEFAULT_PATHS
    manifests = load_manifests(paths, allow_empty=allow_empty)
    settings = load_settings(paths, config_file=config_file)
    if adopt:
        return _adopt(ctx, manifests, settings, tuple(paths), sandbox, dry_run,
                      Targeting(tuple(target), tuple(exclude), _selectors(selector)))
    with open_session(settings, sandbox=sandbox) as session:
        live = read_live_state(session.vendors, manifests.registrations, manifests.instructions, settings, missing_ok=True)
        report = build_drift_report(manifests, live, session.vendors, settings.ignore, audit=_audit(session))
    extra = []
    for spec in also:
        kind, sep, target_file = spec.partition("=")
        if not sep or kind not in ("text", "json", "markdown", "html", "openmetrics") or not target_file:
            raise click.BadParameter(f"{spec!r} is not FORMAT=FILE (text, json, markdown, html, openmetrics)",
                                     param_hint="--also")
        extra.append((kind, target_file))
    text = _render_drift(report, fmt)
    if output:
        _write_report(ctx, settings, output, text, fmt, encrypt=not no_encrypt, findings=len(report.findings))
    else:
        ctx.out.result(text)
    for kind, target_file in extra:
        _write_report(ctx, settings, target_file, _render_drift(report, kind), kind, encrypt=True,
                      findings=len(report.findings))
    return 2 if report.has_drift else 0


def _audit(session) -> dict:
    """Who audited what: endpoints (hosts, never credentials), environment, commit, operator, CI run."""
    import getpass

    from reconciler.ci import ci_run_url
    from reconciler.planfile import current_binding

    e = session.endpoints
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    operator = os.environ.get("GITHUB_ACTOR") or os.environ.get("GITLAB_USER_LOGIN") or user
    return {"environment": e.get("environment"), "orion": e.get("orion"), "sei": e.get("sei"),
            "commit": current_binding(None)["commit"], "operator": operator, "ci_run_url": ci_run_url()}


def _render_drift(report, fmt: str) -> str:
    import json

    from reconciler.render.drift_report import (drift_to_document, render_drift_markdown, render_drift_openmetrics,
                                                render_drift_text)

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
    write_private(path, data)   # client data: 0600
    ctx.out.info(f"Drift report ({fmt}{', encrypted' if sealed else ''}) written to {path}: {findings} finding(s).")


def _adopt(ctx: Context, manifests, settings, paths, sandbox: bool, dry_run: bool, targeting) -> int:
    """drift --adopt: read live state, rewrite only the drifted scalars; exit 2 if anything was left."""
    from reconciler.adopt import plan_adoption, write_adoption
    from reconciler.live import read_live_state
    from reconciler.session import open_session

    regs = [r for r in manifests.registrations if targeting.wants(r.address, r.labels)]
    instrs = [i for i in manifests.instructions if targeting.wants(i.address, i.labels)]
    with open_session(settings, sandbox=sandbox) as session:
        live = read_live_state(session.vendors, regs, instrs, settings, missing_ok=True)
    adoption = plan_adoption(manifests, live, settings.ignore, paths, targeting.wants)
    for line in adoption.adopted:
        ctx.out.info(f"adopt {line}")
    for line in adoption.left:
        ctx.out.error(f"left  {line}")
    if dry_run:
        ctx.out.result(adoption.diff() or "Nothing to adopt: the manifests match live state.")
    else:
        written = write_adoption(adoption)
        ctx.out.info(f"Adopted into {len(written)} file(s): {', '.join(written)}" if written else "Nothing to adopt.")
    return 2 if adoption.left or (dry_run and adoption.diff()) else 0


@cli.group(name="import")
def import_() -> None:
    """Write manifests from live state (to adopt what already exists)."""


_OUTPUT = click.option("--output", "output", type=click.Path(),
                       help="A directory (one file per resource) or a file; default: stdout.")
_FORCE = click.option("--force", is_flag=True, help="Overwrite existing files.")


@import_.command("registration")
@click.argument("ids", nargs=-1, required=True, type=int)
@_OUTPUT
@_FORCE
@_SANDBOX
@_CONFIG
@click.pass_obj
def import_registration(ctx: Context, ids, output, force, sandbox, config_file) -> int:
    """Import registrations by id (one bulk read for all of them)."""
    from reconciler.config import load_settings
    from reconciler.errors import LiveStateError
    from reconciler.importer import registration_manifest
    from reconciler.session import open_session

    settings = load_settings((), config_file=config_file)
    with open_session(settings, sandbox=sandbox) as session:
        live = session.vendors.orion.list_with_sleeves(list(ids), chunk=settings.read_chunk, workers=settings.read_workers)
        origin = session.settings.orion.base_url
    missing = [i for i in ids if i not in live]
    if missing:
        raise LiveStateError(f"not found in Orion: registration {', '.join(map(str, missing))}; nothing was written")
    docs = [(registration_manifest(live[i]), f"registration {i} (custodial account {live[i].get('custodialAccountNumber')})")
            for i in ids]
    _write_imported(ctx, docs, "Orion", origin, output, force)
    return 0


@import_.command("tradebatch")
@click.argument("batch_id")
@_OUTPUT
@_FORCE
@_SANDBOX
@_CONFIG
@click.pass_obj
def import_tradebatch(ctx: Context, batch_id, output, force, sandbox, config_file) -> int:
    """Import one SEI model change (all its tickets) by batchId."""
    from reconciler.config import load_settings
    from reconciler.errors import LiveStateError
    from reconciler.importer import tradebatch_manifest
    from reconciler.session import open_session

    settings = load_settings((), config_file=config_file)
    with open_session(settings, sandbox=sandbox) as session:
        rows = [r for r in session.vendors.sei.iter_tickets() if str(r.get("batchId")) == batch_id]
        origin = session.settings.sei.base_url
    if not rows:
        raise LiveStateError(f"SEI holds no tickets with batchId {batch_id!r}; nothing was written")
    tickets = len({r["tradeTicketId"] for r in rows})
    _write_imported(ctx, [(tradebatch_manifest(batch_id, rows), f"batch {batch_id} ({tickets} ticket{'s' * (tickets != 1)})")],
                    "SEI", origin, output, force)
    return 0


def _write_imported(ctx: Context, docs: list, vendor: str, origin: str, output: str | None, force: bool) -> None:
    from reconciler.importer import render_imported, write_imported

    if output is None:
        ctx.out.result(render_imported(docs, vendor, origin))
        return
    for path in write_imported(docs, vendor, origin, output, force=force):
        ctx.out.info(f"wrote {path}")


@cli.group()
def github() -> None:
    """GitOps helpers for GitHub Actions: plan comments, commit status, drift issues.

    They read GITHUB_TOKEN, GITHUB_REPOSITORY and GITHUB_API_URL from the environment.
    """


def _github_client():
    from reconciler.config import Secret
    from reconciler.errors import ConfigError
    from reconciler.providers.github import GitHubClient

    token, repo = os.environ.get("GITHUB_TOKEN"), os.environ.get("GITHUB_REPOSITORY")
    if not token or not repo:
        raise ConfigError("GITHUB_TOKEN and GITHUB_REPOSITORY must be set (GitHub Actions sets GITHUB_REPOSITORY; "
                          "pass the token with env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }})")
    return GitHubClient(Secret(token), repo, os.environ.get("GITHUB_API_URL") or "https://api.github.com")


@github.command("comment")
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False))
@click.option("--markdown", "markdown_file", type=click.Path(dir_okay=False),
              help="The plan as `plan --format markdown` printed it: what to post when the saved plan is encrypted "
                   "(the pull-request job cannot, and should not, read it).")
@click.option("--errors", "errors_file", type=click.Path(dir_okay=False),
              help="What `validate` printed: posted (file:line) when the plan could not be made.")
@click.option("--note", help="A line to put above the plan (e.g. why a fresh plan is posted after a merge).")
@click.option("--pr", "number", required=True, type=int, help="Pull request number.")
@click.option("--sha", help="Commit to set the reconciler/plan status on.")
@click.option("--exit-code", "exit_code", type=int, default=2, show_default=True,
              help="The exit code of `plan --detailed-exitcode` (1: the plan failed).")
@click.pass_obj
def github_comment(ctx: Context, plan_file, markdown_file, errors_file, note, number, sha, exit_code) -> int:
    """Post the plan on the pull request, updating our own comment(s) in place."""
    from reconciler.gitops import label_pull, post_plan_comments, status_for_exit_code
    from reconciler.planfile import load_plan
    from reconciler.plan import plan_summary
    from reconciler.render import render_plan_markdown
    from reconciler.render._values import summary_line
    from reconciler.render.markdown import MARKER

    from pathlib import Path

    rendered = Path(markdown_file).read_text(encoding="utf-8") if markdown_file and Path(markdown_file).is_file() else ""
    if MARKER in rendered:   # each comment part starts with the marker
        parts = [MARKER + p.rstrip().removesuffix("---").rstrip() + "\n" for p in rendered.split(MARKER)[1:]]
        head = parts[0].splitlines()[1] if len(parts[0].splitlines()) > 1 else ""
        summary = "plan fails a hard policy" if exit_code == 1 else head.removeprefix("### reconciler plan: ")
    elif exit_code == 1 or not plan_file:
        from reconciler.escaping import md_fence

        errors = Path(errors_file).read_text(encoding="utf-8", errors="replace").strip() if errors_file and \
            Path(errors_file).is_file() else ""
        lines = errors.splitlines()
        shown = "\n".join(lines[:200]) + (f"\n… {len(lines) - 200} more line(s) in the workflow log" if len(lines) > 200 else "")
        parts = [f"{MARKER}\n### reconciler plan failed for {(sha or 'this commit')[:12]}\n\n"
                 + (f"The manifests are invalid:\n\n{md_fence(shown)}\n" if errors else
                    "The plan could not be made; the workflow log says why.")]
        summary = (f"validate failed: {sum(1 for ln in lines if ':' in ln and not ln.startswith('Error:'))} error(s)"
                   if errors else "plan failed")
    else:
        saved = load_plan(plan_file)
        parts = render_plan_markdown(saved.plan, environment=saved.endpoints)
        summary = summary_line(plan_summary(saved.plan))
    parts = _comment_context(parts, sha, note)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:   # the full plan, whatever the comment had to leave out
        with open(summary_file, "a", encoding="utf-8") as f:
            f.write("\n\n".join(parts) + "\n")
    client = _github_client()
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


def _comment_context(parts: list[str], sha: str | None, note: str | None) -> list[str]:
    """The commit and the CI run under the first part's title, and an optional note: what a reviewer
    needs to know the comment describes the newest push."""
    from reconciler.ci import ci_run_url
    from reconciler.escaping import md_code, md_text

    run = ci_run_url()
    context = " · ".join(x for x in (f"commit {md_code(sha[:12])}" if sha else "",
                                     f"[CI run]({run})" if run else "") if x)
    first = parts[0].split("\n")
    title = 2 if len(first) > 1 and first[1].startswith("###") else 1
    extra = ([context, ""] if context else []) + ([f"> {md_text(note, 1000)}", ""] if note else [])
    return ["\n".join(first[:title] + [""] + extra + first[title:]).replace("\n\n\n", "\n\n")] + parts[1:]


@github.command("adopt-pr")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--branch", default="reconciler/adopt-drift", show_default=True, help="The adoption branch.")
@click.option("--base", default="main", show_default=True, help="The branch the pull request targets.")
@click.option("--report-url", help="A link to the drift report, for the pull request's body.")
@_SANDBOX
@_CONFIG
@click.pass_obj
def github_adopt_pr(ctx: Context, paths, branch, base, report_url, sandbox, config_file) -> int:
    """Adopt drift into the manifests, push it to a branch, and open (or update) one pull request with the evidence."""
    from reconciler.adopt import plan_adoption, write_adoption
    from reconciler.config import load_settings
    from reconciler.drift import build_drift_report
    from reconciler.gitops import adoption_body, commit_and_push, sync_adoption_pull
    from reconciler.live import read_live_state
    from reconciler.manifests import load_manifests
    from reconciler.session import open_session

    paths = paths or DEFAULT_PATHS
    manifests = load_manifests(paths)
    settings = load_settings(paths, config_file=config_file)
    with open_session(settings, sandbox=sandbox) as session:
        live = read_live_state(session.vendors, manifests.registrations, manifests.instructions, settings, missing_ok=True)
        report = build_drift_report(manifests, live, session.vendors, settings.ignore)   # the evidence: who, when
    adoption = plan_adoption(manifests, live, settings.ignore, tuple(paths))
    written = write_adoption(adoption)
    for line in adoption.left:
        ctx.out.error(f"left  {line}")
    if not written:
        ctx.out.info("Nothing to adopt: no pull request is opened.")
        return 2 if adoption.left else 0
    commit_and_push([str(adoption.paths[n]) for n in written], branch,
                    f"Adopt drift from Orion into {len(written)} manifest(s)\n\n" + "\n".join(adoption.adopted))
    client = _github_client()
    try:
        ctx.out.info(sync_adoption_pull(client, branch, base,
                                        adoption_body(adoption.adopted, adoption.left, report.findings, report_url)))
    finally:
        client.close()
    return 2 if adoption.left else 0


@github.command("find-plan")
@click.option("--sha", required=True, help="The merge commit on the main branch.")
@click.option("--workflow", help="Only runs of this workflow (name or file).")
@click.pass_obj
def github_find_plan(ctx: Context, sha, workflow) -> int:
    """Print pr=, head_sha= and run_id= of the plan saved for the pull request merged as SHA ($GITHUB_OUTPUT lines)."""
    from reconciler.gitops import find_plan_run

    client = _github_client()
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
@click.option("--exit-code", "exit_code", type=int, required=True, help="The exit code of `reconciler drift` (2: drift).")
@click.pass_obj
def github_drift_issue(ctx: Context, report, exit_code) -> int:
    """Open or update the drift issue (exit code 2), or close it (0)."""
    from pathlib import Path

    from reconciler.gitops import sync_drift_issue

    if exit_code not in (0, 2):
        raise ReconcilerError(f"drift failed (exit {exit_code}); the issue is left as it is")
    client = _github_client()
    try:
        ctx.out.info(sync_drift_issue(client, Path(report).read_text(encoding="utf-8"), exit_code == 2))
    finally:
        client.close()
    return 0


def _backend_for(paths: tuple[str, ...], config_file: str | None):
    """The state backend of the workspace for `paths` and the configured endpoints (no network to vendors)."""
    from reconciler.backend import open_backend
    from reconciler.config import load_settings, require_safe_url
    from reconciler.workspace import workspace_for

    paths = paths or DEFAULT_PATHS
    settings = load_settings(paths, config_file=config_file)
    ws = workspace_for(settings.workspace, paths, require_safe_url(settings.orion.base_url, "ORION_BASE_URL"),
                       require_safe_url(settings.sei.base_url, "SEI_BASE_URL"))
    return open_backend(settings, ws)


def _journal_for(paths: tuple[str, ...], config_file: str | None):
    backend = _backend_for(paths, config_file)
    return backend.workspace, backend.journal(readonly=True)


@cli.group(name="lock")
def lock_group() -> None:
    """Who holds which workspace (`status`), and clearing a dead holder's record (`release`)."""


@lock_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the leases as JSON.")
@click.option("--path", "paths", multiple=True, help="Manifest paths the workspace is for [default: manifests].")
@_CONFIG
@click.pass_obj
def lock_status(ctx: Context, as_json, paths, config_file) -> int:
    """Show who holds the workspace lock (with PostgreSQL: every workspace in the database)."""
    import json

    from reconciler.escaping import terminal

    backend = _backend_for(tuple(paths), config_file)
    leases = backend.leases()
    if as_json:
        ctx.out.result(json.dumps({"backend": backend.name, "workspace": backend.workspace.key, "leases": leases},
                                  indent=2))
        return 0
    if not leases:
        ctx.out.result(f"No apply holds the workspace {terminal(backend.workspace.label)} ({backend.name}).")
    for r in leases:
        state = "held" if r["alive"] else "free (its holder is gone; `reconciler lock release` clears the record)"
        ctx.out.result(f"{terminal(r.get('label') or r['workspace'])}: {state}; pid {r.get('pid')} on "
                       f"{terminal(r.get('host'))}, user {terminal(r.get('user'))}, since {r.get('started')}"
                       + (f", heartbeat {r.get('heartbeat')}" if r.get("heartbeat") else "")
                       + (f", run {terminal(r.get('ci_run_url'))}" if r.get("ci_run_url") else "")
                       + (f", plan {terminal(r.get('plan_digest'))}" if r.get("plan_digest") else ""))
    return 0


@lock_group.command("release")
@click.option("--path", "paths", multiple=True, help="Manifest paths the workspace is for [default: manifests].")
@_CONFIG
@click.pass_obj
def lock_release(ctx: Context, paths, config_file) -> int:
    """Clear the lease record of a holder whose process or session is gone. A live holder is never broken."""
    from reconciler.errors import LockError

    backend = _backend_for(tuple(paths), config_file)
    live = [r for r in backend.leases() if r["workspace"] == backend.workspace.key and r["alive"]]
    if live:
        raise LockError(f"the workspace is held by a live apply (pid {live[0].get('pid')} on {live[0].get('host')}); "
                        "a live holder's lock is never released")
    dead = backend.release_dead()
    ctx.out.info(f"cleared {len(dead)} record(s) of dead holders" if dead else "nothing to release: no holder record")
    return 0


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@click.option("--path", "paths", multiple=True, help="Manifest paths the workspace is for [default: manifests].")
@_CONFIG
@click.pass_context
def journal(click_ctx, as_json, paths, config_file) -> int:
    """List the writes whose outcome is in doubt (the journal of this workspace)."""
    if click_ctx.invoked_subcommand is not None:
        return 0
    import json

    from reconciler.escaping import terminal

    ctx: Context = click_ctx.obj
    ws, j = _journal_for(tuple(paths), config_file)
    entries = j.in_doubt() if j else []
    if j:
        j.close()
    if as_json:
        ctx.out.result(json.dumps([{"kind": e.kind, "key": e.key, "addresses": list(e.addresses), "state": e.state,
                                    "since": e.since, "detail": e.detail} for e in entries], indent=2))
        return 0
    if not entries:
        ctx.out.result(f"Nothing in doubt in the workspace {terminal(ws.label)}.")
        return 0
    lines = [f"In doubt in the workspace {terminal(ws.label)}:"]
    for e in entries:
        lines.append(f"  {e.kind} {terminal(e.key)} ({e.state} since {e.since}): {terminal(', '.join(e.addresses), 300)}"
                     + (f" — {terminal(e.detail, 300)}" if e.detail else ""))
    lines.append("Apply resolves these from live state first. To decide one yourself: "
                 "reconciler journal resolve KIND KEY --as applied|absent --reason TEXT")
    ctx.out.result("\n".join(lines))
    return 0


@journal.command("resolve")
@click.argument("kind", type=click.Choice(["batch", "ticket"]))
@click.argument("key")
@click.option("--as", "outcome", required=True, type=click.Choice(["applied", "absent"]),
              help="What you established: the write took effect (applied), or it did not (absent).")
@click.option("--reason", required=True, help="Why: recorded in the journal with who and when.")
@click.option("--path", "paths", multiple=True, help="Manifest paths the workspace is for [default: manifests].")
@_CONFIG
@click.pass_obj
def journal_resolve(ctx: Context, kind, key, outcome, reason, paths, config_file) -> int:
    """Resolve one in-doubt write by hand, with a recorded reason."""
    import getpass

    from reconciler.errors import ReconcilerError

    j = _backend_for(tuple(paths), config_file).journal()
    entries = {(e.kind, e.key) for e in j.in_doubt()}
    if (kind, key) not in entries:
        j.close()
        raise ReconcilerError(f"no {kind} {key} is in doubt in this workspace (see `reconciler journal`)")
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "?"
    j.resolve(kind, key, outcome, reason, who)
    j.close()
    ctx.out.info(f"resolved {kind} {key} as {outcome} ({reason}), recorded for {who}")
    return 0


@cli.command()
@click.option("--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the identity (mode 0600); it is never printed.")
@click.pass_obj
def keygen(ctx: Context, output) -> int:
    """Make an age key pair: the identity goes to --output, the public recipient to stdout."""
    import datetime as dt

    from reconciler.files import write_private
    from reconciler.sealing import generate_identity

    recipient, identity = generate_identity()
    when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_private(output, f"# created: {when}\n# public key: {recipient}\n{identity}\n", overwrite=False)
    ctx.out.info(f"Identity written to {output} (mode 0600): store it as the apply environment's secret "
                 "RECONCILER_PLAN_IDENTITY, then delete the file. The public recipient (for plan_recipients):")
    ctx.out.result(recipient)
    return 0


@cli.command()
@click.option("--path", "paths", multiple=True, help="Manifest paths whose reconciler.yaml to use [default: manifests].")
@_SANDBOX
@_CONFIG
@click.pass_obj
def doctor(ctx: Context, paths, sandbox, config_file) -> int:
    """Check configuration, credentials, reachability, TLS, the SEI certificate, logins and reads."""
    from reconciler.config import load_settings
    from reconciler.doctor import Check, run_checks
    from reconciler.errors import ReconcilerError

    try:
        settings = load_settings(paths or DEFAULT_PATHS, config_file=config_file)
        checks = run_checks(settings, sandbox=sandbox)
    except ReconcilerError as e:
        checks = [Check("configuration", "fail", str(e), "fix reconciler.yaml or the environment")]
    marks = {"ok": "✓", "warn": "!", "fail": "✗"}
    for c in checks:
        ctx.out.result(f"{marks[c.status]} {c.name}: {c.detail}" + (f" — {c.hint}" if c.hint and c.status != "ok" else ""))
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    ctx.out.info(f"doctor: {len(checks) - failed - warned} ok, {warned} warning(s), {failed} failure(s)")
    return 1 if failed else 0


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_FORMAT
@click.pass_obj
def show(ctx: Context, file, fmt) -> int:
    """Render a saved plan."""
    from reconciler.config import plan_identity
    from reconciler.planfile import load_plan

    saved = load_plan(file, plan_identity())
    ctx.out.info(f"Saved plan {saved.plan_id}: made {saved.created_at:%Y-%m-%d %H:%M %Z} by reconciler "
                 f"{saved.tool_version}, {'EXPIRED' if saved.expired() else 'valid until'} {saved.expires_at:%Y-%m-%d %H:%M %Z}.")
    _emit_plan(ctx, saved.plan, fmt)
    return 0


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (keep it on loopback).")
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--state", "state_file", type=click.Path(dir_okay=False), help="JSON state file: seeded from the demo if missing, kept after every write.")
@click.option("--faults", help="Fault spec, e.g. '429=2@POST:/api/*#3,drop@POST:/v1/order/tradetickets#1'.")
@click.option("--batch-latency", default=2.0, show_default=True, type=float, help="Seconds a batch takes from submit to done.")
@click.option("--orion-token", envvar="ORION_TOKEN", help="Orion session token to accept [env ORION_TOKEN].")
@click.option("--sei-token", envvar="SEI_TOKEN", help="SEI bearer token to accept [env SEI_TOKEN].")
@click.option("--sei-app-key", envvar="SEI_APP_KEY", help="SEI AppKey to accept [env SEI_APP_KEY].")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS with this certificate (PEM).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Its private key (PEM).")
@click.option("--client-ca", type=click.Path(exists=True, dir_okay=False), help="Require client certificates signed by this CA (mTLS).")
@click.pass_obj
def sandbox(ctx: Context, host, port, state_file, faults, batch_latency, orion_token, sei_token, sei_app_key,
            tls_cert, tls_key, client_ca) -> int:
    """Serve the built-in emulator of both APIs: Orion under /api, SEI at the root."""
    from pathlib import Path

    from reconciler.sandbox.app import DEMO_CREDENTIALS, SandboxCredentials
    from reconciler.sandbox.faults import parse_faults
    from reconciler.sandbox.server import TlsFiles, load_state, serve
    from reconciler.sandbox.state import SandboxTiming

    try:
        parse_faults(faults)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--faults") from None
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    given = any((orion_token, sei_token, sei_app_key))
    creds = SandboxCredentials(
        orion_token=orion_token or DEMO_CREDENTIALS["ORION_TOKEN"], sei_token=sei_token or DEMO_CREDENTIALS["SEI_TOKEN"],
        sei_app_key=sei_app_key or DEMO_CREDENTIALS["SEI_APP_KEY"])
    state = load_state(Path(state_file) if state_file else None, SandboxTiming(batch_latency=batch_latency))
    tls = TlsFiles(tls_cert, tls_key, client_ca) if tls_cert else None
    base = f"{'https' if tls else 'http'}://{host}:{port}"
    lines = [f"reconciler sandbox: Orion at {base}/api, SEI at {base}",
             f"state: {state_file + ' (kept after every write)' if state_file else 'in memory (demo)'}; "
             f"{len(state.registrations)} registrations, {len(state.tickets)} ticket rows",
             f"controls: {base}/_sandbox/counters, /_sandbox/writes, /_sandbox/state, /_sandbox/faults",
             "", "To point reconciler at it:", f"  export ORION_BASE_URL={base}/api SEI_BASE_URL={base}"]
    if not given:
        lines.append("  export " + " ".join(f"{k}={v}" for k, v in DEMO_CREDENTIALS.items()) + "   # demo values")
    else:
        lines.append("  (credentials: the ORION_TOKEN / SEI_TOKEN / SEI_APP_KEY values it was started with)")
    ctx.out.info("\n".join(lines))
    serve(state, creds, host=host, port=port, faults=faults, tls=tls)
    return 0
