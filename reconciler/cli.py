"""The command line: parse, call the library, print what the renderers return, map errors to exit codes.

The only module that imports click. Exit codes are the contract of SPEC.md §3: 0 success/no changes,
1 error, 2 changes or drift, 3 apply ended with failed or unknown items. click's own usage errors
(exit 2 by default) are mapped to 1, because 2 means "changes present" here.
"""

from __future__ import annotations

import logging
import sys
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
            out.error(str(d))
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


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.pass_obj
def validate(ctx: Context, paths: tuple[str, ...]) -> int:
    """Load and check manifests (default: manifests/). No network."""
    from reconciler.manifests import load_manifests

    manifests = load_manifests(paths or DEFAULT_PATHS)
    n = len(manifests.registrations) + len(manifests.batches)
    ctx.out.info(f"OK: {len(manifests.files)} files, {len(manifests.registrations)} registrations, "
                 f"{len(manifests.batches)} trade batches ({len(manifests.instructions)} instructions), "
                 f"{n} resources valid.")
    return 0
