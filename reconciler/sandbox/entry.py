"""The sandbox's only doors for the rest of reconciler (import-linter holds every other module shut):

- `embedded()`: the emulator in this process on a free loopback port, with demo state and fresh
  random credentials, for `--sandbox`;
- `run_server()`: the emulator in the foreground, for `reconciler sandbox`, with its banner.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reconciler.sandbox.app import DEMO_CREDENTIALS, SandboxCredentials
from reconciler.sandbox.batches import parse_latency
from reconciler.sandbox.demo import demo_state
from reconciler.sandbox.faults import parse_faults
from reconciler.sandbox.server import RunningSandbox, TlsFiles, listening_socket, load_state, serve, start_sandbox
from reconciler.sandbox.state import SandboxState, SandboxTiming

__all__ = ["OptionError", "ServeError", "ServerOptions", "embedded", "run_server"]


class OptionError(ValueError):
    """A server option that cannot work; raised before anything is served."""


@contextmanager
def embedded(batch_latency: float) -> Iterator[RunningSandbox]:
    """A running emulator seeded with demo state; `.orion_url`, `.sei_url` and `.creds` reach it."""
    state = SandboxState.from_json(demo_state(), timing=SandboxTiming(batch_latency=batch_latency))
    with start_sandbox(state) as sb:
        yield sb


@dataclass(frozen=True)
class ServerOptions:
    host: str
    port: int
    state_file: str | None = None
    faults: str | None = None
    batch_latency: str = "2"  # seconds, or a range "1-2"
    orion_token: str | None = None
    sei_token: str | None = None
    sei_app_key: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    seed: int | None = None  # for chance faults and latency ranges
    seed_file: str | None = None  # start from this state file, keep state in memory (large estates)


def run_server(opts: ServerOptions, announce: Callable[[str], None]) -> None:
    """Serve until Ctrl-C. Raises OptionError for a bad fault spec or half a TLS pair, before serving."""
    try:
        parse_faults(opts.faults)
    except ValueError as e:
        raise OptionError(f"--faults: {e}") from e
    try:
        low, high = parse_latency(str(opts.batch_latency))
    except ValueError as e:
        raise OptionError(str(e)) from e
    if bool(opts.tls_cert) != bool(opts.tls_key):
        raise OptionError("--tls-cert and --tls-key go together")
    given = any((opts.orion_token, opts.sei_token, opts.sei_app_key))
    creds = SandboxCredentials(
        orion_token=opts.orion_token or DEMO_CREDENTIALS["ORION_TOKEN"],
        sei_token=opts.sei_token or DEMO_CREDENTIALS["SEI_TOKEN"],
        sei_app_key=opts.sei_app_key or DEMO_CREDENTIALS["SEI_APP_KEY"],
    )
    if opts.state_file and opts.seed_file:
        raise OptionError("--state and --seed-state go separately: one keeps the file current, the other only reads it")
    timing = SandboxTiming(batch_latency=low, batch_latency_max=high, seed=opts.seed)
    if opts.seed_file:
        try:
            state = load_state(Path(opts.seed_file), timing, keep=False)
        except (OSError, ValueError) as e:
            raise OptionError(f"--seed-state {opts.seed_file}: {e}") from e
    else:
        state = load_state(Path(opts.state_file) if opts.state_file else None, timing)
    kept = (
        f"{opts.state_file} (kept after every write)"
        if opts.state_file
        else f"seeded from {opts.seed_file}, kept in memory"
        if opts.seed_file
        else "in memory (demo)"
    )
    tls = TlsFiles(opts.tls_cert, opts.tls_key, opts.client_ca) if opts.tls_cert and opts.tls_key else None
    sock = _bind(opts.host, opts.port)  # before the banner: a busy port is an error, not a server
    base = f"{'https' if tls else 'http'}://{opts.host}:{sock.getsockname()[1]}"
    lines = [
        f"reconciler sandbox: Orion at {base}/api, SEI at {base}",
        f"state: {kept}; {len(state.registrations)} registrations, {len(state.tickets)} ticket rows",
        f"controls: {base}/_sandbox/counters, /_sandbox/writes, /_sandbox/state, /_sandbox/faults",
        "",
        "To point reconciler at it:",
        f"  export ORION_BASE_URL={base}/api SEI_BASE_URL={base}",
    ]
    if not given:
        lines.append("  export " + " ".join(f"{k}={v}" for k, v in DEMO_CREDENTIALS.items()) + "   # demo values")
    else:
        lines.append("  (credentials: the ORION_TOKEN / SEI_TOKEN / SEI_APP_KEY values it was started with)")
    announce("\n".join(lines))
    serve(state, creds, sock=sock, faults=opts.faults, tls=tls, seed=opts.seed)


class ServeError(Exception):
    """The sandbox cannot serve where it was asked to (a busy port, an address it may not bind)."""


def _bind(host: str, port: int) -> socket.socket:
    try:
        return listening_socket(host, port)
    except OSError as e:
        raise ServeError(
            f"cannot serve on {host}:{port} ({e.strerror}): another process may be using it; "
            "pick another with --port (0 picks a free one)"
        ) from e
