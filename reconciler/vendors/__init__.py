"""Vendor clients: the only package that imports httpx.

`open_vendors(settings)` builds both clients with their timeouts, TLS and one shared Retry-After
pause, and closes them on exit. Tests pass their own httpx.Client (e.g. on httpx.MockTransport)
through `OrionClient`/`SeiClient` directly.
"""

from __future__ import annotations

import logging
import ssl
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlsplit

import httpx

from reconciler.config import Settings, require_safe_url
from reconciler.errors import ConfigError
from reconciler.vendors._http import HttpPolicy, PauseGate, Redactor, parse_retry_after, probe_tls_refusal
from reconciler.vendors.orion import OrionClient, parse_batch_id
from reconciler.vendors.sei import SeiClient
from reconciler.version import __version__

__all__ = [
    "HttpPolicy",
    "OrionClient",
    "PauseGate",
    "Redactor",
    "SeiClient",
    "Vendors",
    "build_sei_ssl_context",
    "open_vendors",
    "parse_batch_id",
    "parse_retry_after",
]

# httpx logs each URL at INFO and httpcore raw traffic at DEBUG; we log requests ourselves, masked.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@dataclass
class Vendors:
    orion: OrionClient
    sei: SeiClient
    redact: Redactor


def build_sei_ssl_context(settings: Settings) -> ssl.SSLContext | bool:
    """Two-way TLS for SEI from PEM files. Plain http (loopback only) needs none."""
    s = settings.sei
    if urlsplit(s.base_url).scheme != "https":
        return True
    ctx = ssl.create_default_context(cafile=s.ca_bundle) if s.ca_bundle else ssl.create_default_context()
    host = urlsplit(s.base_url).hostname or ""
    if s.client_cert or s.client_key:
        try:
            ctx.load_cert_chain(s.client_cert or "", s.client_key or None)
        except (OSError, ssl.SSLError) as e:
            # never quote the key file's contents; name the variables instead
            raise ConfigError(f"cannot load the SEI client certificate/key (SEI_CLIENT_CERT, SEI_CLIENT_KEY): "
                              f"{getattr(e, 'strerror', None) or type(e).__name__}") from e
    elif host not in ("localhost", "127.0.0.1", "::1"):
        raise ConfigError("SEI requires two-way TLS: set SEI_CLIENT_CERT and SEI_CLIENT_KEY (PEM files)")
    return ctx


def _client(base_url: str, settings: Settings, verify: ssl.SSLContext | bool, connections: int) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(connect=settings.connect_timeout, read=settings.read_timeout,
                              write=settings.write_timeout, pool=settings.pool_timeout),
        verify=verify,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        headers={"User-Agent": f"reconciler/{__version__}"},
        follow_redirects=False,
        trust_env=False,
    )


@contextmanager
def open_vendors(settings: Settings, *, gate: PauseGate | None = None) -> Iterator[Vendors]:
    orion_url = require_safe_url(settings.orion.base_url, "ORION_BASE_URL")
    sei_url = require_safe_url(settings.sei.base_url, "SEI_BASE_URL")
    policy = HttpPolicy(max_attempts=settings.max_attempts, retry_after_cap=settings.retry_after_cap,
                        deadline=settings.request_deadline)
    gate = gate or PauseGate()
    redact = Redactor()
    connections = max(settings.parallelism, settings.read_workers) * 2 + 2
    orion_http = _client(orion_url, settings, True, connections)
    sei_tls = build_sei_ssl_context(settings)
    sei_http = _client(sei_url, settings, sei_tls, connections)
    probe = None
    if isinstance(sei_tls, ssl.SSLContext):
        parts = urlsplit(sei_url)
        probe = lambda: probe_tls_refusal(parts.hostname or "", parts.port or 443, sei_tls)  # noqa: E731
    sei = SeiClient(settings.sei, sei_http, redact=redact, policy=policy, gate=gate, tls_probe=probe)
    try:
        yield Vendors(OrionClient(settings.orion, orion_http, redact=redact, policy=policy, gate=gate), sei, redact)
    finally:
        try:
            sei.revoke()   # a minted SEI token is revoked at the end of the run, where credentials allow
        finally:
            orion_http.close()
            sei_http.close()
