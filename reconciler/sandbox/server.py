"""Running the sandbox: in a background thread (for --sandbox and tests) or in the foreground.

The only module that imports uvicorn. Binding our own loopback socket lets port 0 pick a free port
that we know before the first request. TLS, and two-way TLS when a client CA is given, are
uvicorn's own (Python's ssl module).
"""

from __future__ import annotations

import gc
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from reconciler.sandbox.app import SandboxCredentials, create_app
from reconciler.sandbox.demo import demo_state
from reconciler.sandbox.faults import FaultBook, parse_faults
from reconciler.sandbox.state import SandboxState, SandboxTiming

__all__ = ["RunningSandbox", "TlsFiles", "load_state", "serve", "serve_in_thread", "start_sandbox"]


@dataclass(frozen=True)
class TlsFiles:
    cert: str
    key: str
    client_ca: str | None = None  # when set, clients must present a certificate it signed


@dataclass
class RunningSandbox:
    url: str
    state: SandboxState
    faults: FaultBook
    creds: SandboxCredentials
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def orion_url(self) -> str:
        return f"{self.url}/api"

    @property
    def sei_url(self) -> str:
        return self.url

    def env(self) -> dict[str, str]:
        """Environment variables that point both clients at this sandbox."""
        return {
            "ORION_BASE_URL": self.orion_url,
            "SEI_BASE_URL": self.sei_url,
            "ORION_TOKEN": self.creds.orion_token,
            "SEI_TOKEN": self.creds.sei_token,
            "SEI_APP_KEY": self.creds.sei_app_key,
        }

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def load_state(path: Path | None, timing: SandboxTiming | None = None, *, keep: bool = True) -> SandboxState:
    """The state file's contents if it exists, else the demo state (written to the file if named).
    `keep=False`: only read the file (it must exist); the state lives in memory, never written back
    (rewriting 100,000 registrations after every batch would be the sandbox's whole day)."""
    if not keep:
        assert path is not None
        return SandboxState.from_json(json.loads(path.read_text(encoding="utf-8")), timing=timing)
    if path is not None and path.exists():
        return SandboxState.from_json(json.loads(path.read_text(encoding="utf-8")), timing=timing, path=path)
    state = SandboxState.from_json(demo_state(), timing=timing, path=path)
    state.save()
    return state


def _config(app, tls: TlsFiles | None) -> uvicorn.Config:
    kw: dict[str, Any] = {}
    if tls is not None:
        kw = {"ssl_certfile": tls.cert, "ssl_keyfile": tls.key}
        if tls.client_ca:
            kw |= {"ssl_ca_certs": tls.client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2, **kw)


def start_sandbox(
    state: SandboxState | None = None,
    creds: SandboxCredentials | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: str | None = None,
    tls: TlsFiles | None = None,
    seed: int | None = None,
) -> RunningSandbox:
    """Start the sandbox in a daemon thread and return once it accepts connections."""
    state = state or SandboxState.from_json(demo_state())
    creds = creds or SandboxCredentials(
        orion_token=_random_token(), sei_token=_random_token(), sei_app_key=_random_token()
    )
    book = FaultBook(parse_faults(faults), seed=seed)
    url, server, thread = serve_in_thread(create_app(state, creds, book), host=host, port=port, tls=tls)
    return RunningSandbox(url, state, book, creds, server, thread)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), for uvicorn to listen on. Raises OSError if it cannot bind.

    `proto` must say TCP: asyncio sets TCP_NODELAY only on accepted sockets whose proto is IPPROTO_TCP.
    Without it, every second request on a kept-alive connection waited 40 ms for a delayed ACK (Nagle),
    and the sandbox, not reconciler, was the SEI wave's bottleneck (1,000 tickets: 11 s instead of 2)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve_in_thread(app, *, host: str = "127.0.0.1", port: int = 0, tls: TlsFiles | None = None):
    """Any ASGI app on a loopback port in a daemon thread: (url, server, thread); stop with server.should_exit."""
    sock = listening_socket(host, port)
    server = uvicorn.Server(_config(app, tls))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="asgi-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    return f"{'https' if tls else 'http'}://{host}:{sock.getsockname()[1]}", server, thread


def serve(
    state: SandboxState,
    creds: SandboxCredentials,
    *,
    sock: socket.socket,
    faults: str | None,
    tls: TlsFiles | None,
    seed: int | None = None,
) -> None:
    """Serve on the bound `sock` in the foreground until Ctrl-C (uvicorn handles the signal).

    The process is the sandbox's own, so its collector is set for a server whose heap is its state: the
    seeded registrations are frozen out of collection, and full collections are rare. With the defaults,
    every few seconds of an apply a full collection walked the whole estate (0.14 s growing to 0.64 s at
    20,000 registrations), and every request waited: a vendor pause no real vendor's batch latency has.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 1000)  # young generations as usual; a full collection after 1,000 of gen 1
    book = FaultBook(parse_faults(faults), seed=seed)
    uvicorn.Server(_config(create_app(state, creds, book), tls)).run(sockets=[sock])


def _random_token() -> str:
    import secrets

    return secrets.token_urlsafe(18)
