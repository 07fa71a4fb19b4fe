"""`keygen`, `doctor` and `sandbox`: keys for saved plans, environment checks, the emulator."""

from __future__ import annotations

import click

from reconciler.cli.app import CONFIG, SANDBOX, Context, cli, default_paths


@cli.command()
@click.option(
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the identity (mode 0600); it is never printed.",
)
@click.pass_obj
def keygen(ctx: Context, output) -> int:
    """Make an age key pair: the identity goes to --output, the public recipient to stdout."""
    import datetime as dt

    from reconciler.files import write_private
    from reconciler.sealing import generate_identity

    recipient, identity = generate_identity()
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write_private(output, f"# created: {when}\n# public key: {recipient}\n{identity}\n", overwrite=False)
    ctx.out.info(
        f"Identity written to {output} (mode 0600): store it as the apply environment's secret "
        "RECONCILER_PLAN_IDENTITY, then delete the file. The public recipient (for plan_recipients):"
    )
    ctx.out.result(recipient)
    return 0


@cli.command()
@click.option(
    "--path", "paths", multiple=True, help="Manifest paths whose reconciler.yaml to use [default: manifests]."
)
@SANDBOX
@CONFIG
@click.pass_obj
def doctor(ctx: Context, paths, sandbox, config_file) -> int:
    """Check configuration, credentials, reachability, TLS, the SEI certificate, logins and reads."""
    from reconciler.config import load_settings
    from reconciler.errors import ReconcilerError
    from reconciler.vendors.doctor import Check, CheckStatus, run_checks

    try:
        settings = load_settings(paths or default_paths(ctx), config_file=config_file)
        checks = run_checks(settings, sandbox=sandbox)
    except ReconcilerError as e:
        checks = [Check("configuration", CheckStatus.FAIL, str(e), "fix reconciler.yaml or the environment")]
    marks = {CheckStatus.OK: "✓", CheckStatus.WARN: "!", CheckStatus.FAIL: "✗"}
    for c in checks:
        ctx.out.result(
            f"{marks[c.status]} {c.name}: {c.detail}"
            + (f" — {c.hint}" if c.hint and c.status is not CheckStatus.OK else "")
        )
    failed = sum(c.status is CheckStatus.FAIL for c in checks)
    warned = sum(c.status is CheckStatus.WARN for c in checks)
    ctx.out.info(f"doctor: {len(checks) - failed - warned} ok, {warned} warning(s), {failed} failure(s)")
    return 1 if failed else 0


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (keep it on loopback).")
@click.option("--port", default=8765, show_default=True, type=int)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False),
    help="JSON state file: seeded from the demo if missing, kept after every write.",
)
@click.option(
    "--seed-state",
    "seed_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Start from this JSON state file and keep the state in memory (never written back; for large estates).",
)
@click.option("--faults", help="Fault spec, e.g. '429=2@POST:/api/*#3,drop@POST:/v1/order/tradetickets#1'.")
@click.option(
    "--batch-latency",
    default="2",
    show_default=True,
    help="Seconds a batch takes from submit to done, or a range each batch draws from (e.g. 1-2).",
)
@click.option("--fault-seed", type=int, help="Seed the draws of chance faults (%PERCENT) and latency ranges.")
@click.option("--orion-token", envvar="ORION_TOKEN", help="Orion session token to accept [env ORION_TOKEN].")
@click.option("--sei-token", envvar="SEI_TOKEN", help="SEI bearer token to accept [env SEI_TOKEN].")
@click.option("--sei-app-key", envvar="SEI_APP_KEY", help="SEI AppKey to accept [env SEI_APP_KEY].")
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS with this certificate (PEM)."
)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Its private key (PEM).")
@click.option(
    "--client-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="Require client certificates signed by this CA (mTLS).",
)
@click.pass_obj
def sandbox(
    ctx: Context,
    host,
    port,
    state_file,
    seed_file,
    faults,
    batch_latency,
    fault_seed,
    orion_token,
    sei_token,
    sei_app_key,
    tls_cert,
    tls_key,
    client_ca,
) -> int:
    """Serve the built-in emulator of both APIs: Orion under /api, SEI at the root."""
    from reconciler.sandbox.entry import OptionError, ServeError, ServerOptions, run_server

    opts = ServerOptions(
        host,
        port,
        state_file,
        faults,
        batch_latency,
        orion_token,
        sei_token,
        sei_app_key,
        tls_cert,
        tls_key,
        client_ca,
        fault_seed,
        seed_file,
    )
    try:
        run_server(opts, ctx.out.info)
    except OptionError as e:
        raise click.UsageError(str(e)) from e
    except ServeError as e:
        ctx.out.error(f"Error: {e}")
        return 1
    return 0
