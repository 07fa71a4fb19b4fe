"""The CLI's frame: the click group, exit-code mapping, and the options and helpers commands share.

Exit codes are the contract of SPEC.md §3: 0 success/no changes, 1 error, 2 changes or drift, 3 apply
ended with failed or unknown items. click's own usage errors (exit 2 by default) are mapped to 1,
because 2 means "changes present" here. Never a traceback unless --debug.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import click

from reconciler.config.environment import RunFacts, run_facts
from reconciler.console import Output
from reconciler.errors import ManifestError, ReconcilerError
from reconciler.version import __version__

__all__ = [
    "ALLOW_EMPTY",
    "CONFIG",
    "Context",
    "DEFAULT_PATHS",
    "default_paths",
    "DURATION",
    "FORMAT",
    "SANDBOX",
    "cli",
    "emit_plan",
    "main",
    "now_for",
    "report_targeting",
    "run",
    "selectors",
    "state_warnings",
]

DEFAULT_PATHS = ("manifests",)


def default_paths(ctx: Context) -> tuple[str, ...]:
    """No PATH given: `manifests/` here, else in the nearest folder above that has one, up to the
    repository root (as git finds its repository), so `plan` works from `manifests/registrations/`
    too; the output says which folder was used when it is not here."""
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "manifests").is_dir():
            if folder == here:
                return DEFAULT_PATHS
            found = os.path.relpath(folder / "manifests")
            ctx.out.info(f"Using {found} (the manifests/ folder of {folder}).")
            return (found,)
        if (folder / ".git").exists():
            break
    return DEFAULT_PATHS  # not found: the error names manifests/, as before


@dataclass(frozen=True)
class Context:
    debug: bool
    out: Output
    facts: RunFacts  # what the environment says about this run (CI, commit, operator, GitHub)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None, out: Output | None = None) -> int:
    """Run one command; return its exit code. Never lets a traceback out unless --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args  # accepted before or after the subcommand
    args = [a for a in args if a != "--debug"]
    facts = run_facts()
    out = out or Output(ci=facts.ci, no_color=facts.no_color)
    _configure_logging(debug)
    try:
        rv = cli.main(args=args, prog_name="reconciler", standalone_mode=False, obj=Context(debug, out, facts))
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        out.error("Aborted.")
        return 1
    except click.ClickException as e:
        where = getattr(getattr(e, "ctx", None), "command_path", None) or "reconciler"  # the subcommand's help
        out.error(f"Error: {e.format_message()}  (see `{where} --help`)")
        return 1  # 2 means "changes present" here, never a usage error
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
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # httpx logs every request URL at INFO and httpcore logs raw headers at DEBUG: keep them quiet,
    # our vendor clients log requests themselves with secrets masked.
    for name in ("httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Manage Orion sleeve registrations and SEI trade instructions as code.

    Add --debug anywhere for tracebacks and request logs (secrets masked).
    """


class _Duration(click.ParamType):
    """Seconds as Terraform users type them: 3s, 500ms, 5m, 1h, 1m30s, or a bare number."""

    name = "duration"

    def convert(self, value, param, ctx):
        from reconciler.config.durations import parse_duration

        if isinstance(value, float):
            return value
        try:
            return parse_duration(value)
        except ValueError:
            self.fail(f"{value!r} is not a duration (seconds, or e.g. 3s, 500ms, 5m, 1h)", param, ctx)


DURATION = _Duration()


ALLOW_EMPTY = click.option(
    "--allow-empty", is_flag=True, help="Accept a manifests tree that declares no resource (otherwise an error)."
)


FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True
)


SANDBOX = click.option(
    "--sandbox", is_flag=True, help="Start the built-in emulator in-process (demo state) and use it."
)


CONFIG = click.option("--config", "config_file", type=click.Path(dir_okay=False), help="reconciler.yaml to use.")


def selectors(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
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

    return parse_now(flag, "--now") if flag else (settings.now or dt.datetime.now(dt.UTC))


def report_targeting(ctx: Context, targeting, warnings, selected: int, total: int) -> None:
    from reconciler.plan.targeting import selection_line

    for w in warnings:
        ctx.out.error(f"Warning: {w}")
    line = selection_line(targeting, selected, total)
    if line:
        ctx.out.info(line)


def emit_plan(
    ctx: Context, plan, fmt: str, stages=None, environment: dict | None = None, server_checks: list | None = None
) -> None:
    """The plan in `fmt`. JSON names where it goes (`endpoints`) and Orion's own verdicts when asked."""
    from reconciler.plan.document import plan_to_document
    from reconciler.render import render_plan_markdown, render_plan_text

    if fmt == "json":
        import json

        doc = plan_to_document(plan)
        if environment:
            doc["endpoints"] = dict(environment)
        if server_checks is not None:
            doc["server_validate"] = [
                {
                    "address": v.address,
                    "source": v.source,
                    "is_valid": v.is_valid,
                    "message": v.message,
                    "error": v.error,
                }
                for v in server_checks
            ]
        ctx.out.result(json.dumps(doc, indent=2, default=str))
    elif fmt == "markdown":
        ctx.out.result("\n\n---\n\n".join(render_plan_markdown(plan, environment=environment)))
    else:
        ctx.out.result(render_plan_text(plan, stages))


def state_warnings(ctx: Context, session, paths: tuple[str, ...], sandbox: bool, *, keeps_out: bool = True):
    """What the workspace's state says before a read-only command looks at live state: an apply running
    now, and writes in doubt (returned, so a plan keeps them out). Found from the manifests, as apply
    finds it, from whatever folder the command runs in."""
    from reconciler.apply.recovery import in_doubt_view
    from reconciler.state.backend import open_backend
    from reconciler.state.workspace import run_workspace

    with run_workspace(paths, session.settings, sandbox=sandbox) as ws:
        backend = open_backend(session.settings, ws, sandbox=sandbox, facts=ctx.facts)
        journal = backend.read_journal()
        try:
            in_doubt = in_doubt_view(journal)
        finally:
            if journal is not None:
                journal.close()
        for notice in backend.notices:
            ctx.out.info(notice)
        for lease in backend.leases():
            if lease["workspace"] == ws.key and lease["alive"]:
                ctx.out.error(
                    f"Warning: an apply of this workspace is running: pid {lease.get('pid')} on "
                    f"{lease.get('host')} since {lease.get('started')}; what follows may be outdated "
                    "as soon as it is printed."
                )
    if in_doubt.busy:
        ctx.out.error(
            f"Warning: {len(in_doubt.busy)} resource(s) have writes in doubt from an earlier apply "
            "(see `reconciler journal`); "
            + (
                "they are left out of this plan until apply resolves them."
                if keeps_out
                else "their live state may still change."
            )
        )
    return in_doubt
