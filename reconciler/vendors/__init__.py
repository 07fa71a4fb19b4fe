"""Vendor clients: the only package that imports httpx.

`open_vendors(settings)` builds both clients with their timeouts, TLS and a Retry-After pause per
vendor (shared by all of that vendor's workers, API.md §3; a vendor's rate limit says nothing of the
other's), and closes them on exit. Tests pass their own httpx.Client (e.g. on httpx.MockTransport)
through `OrionClient`/`SeiClient` directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from reconciler.config import Settings, require_safe_url
from reconciler.vendors import orion, sei
from reconciler.vendors.orion import OrionClient, parse_batch_id
from reconciler.vendors.redaction import Redactor
from reconciler.vendors.retry import HttpPolicy, PauseGate, parse_retry_after
from reconciler.vendors.sei import SeiClient
from reconciler.vendors.tls import VendorTls, vendor_tls
from reconciler.version import __version__

__all__ = [
    "HttpPolicy",
    "OrionClient",
    "PauseGate",
    "Redactor",
    "SeiClient",
    "Vendors",
    "orion_tls",
    "open_vendors",
    "parse_batch_id",
    "parse_retry_after",
    "sei_tls",
]

# httpx logs each URL at INFO and httpcore raw traffic at DEBUG; we log requests ourselves, masked.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@dataclass
class Vendors:
    orion: OrionClient
    sei: SeiClient
    redact: Redactor


def orion_tls(settings: Settings) -> VendorTls:
    """Orion's TLS: its CA bundle where one is given (ORION_CA_BUNDLE, orion.caBundle), else the system's."""
    return vendor_tls(
        "Orion", settings.orion.base_url, ca_bundle=settings.orion.ca_bundle, variables=orion.TLS_VARIABLES
    )


def sei_tls(settings: Settings) -> VendorTls:
    """SEI's two-way TLS from PEM files; plain http (loopback only) needs none."""
    s = settings.sei
    return vendor_tls(
        "SEI",
        s.base_url,
        ca_bundle=s.ca_bundle,
        client_cert=s.client_cert,
        client_key=s.client_key,
        require_client_cert=True,
        variables=sei.TLS_VARIABLES,
    )


def _client(base_url: str, settings: Settings, tls: VendorTls, connections: int) -> httpx.Client:
    """One vendor's connection pool. trust_env=False: only the proxy settings reads on purpose apply."""
    proxy = settings.proxy.for_url(base_url) if settings.proxy is not None else None
    return httpx.Client(
        proxy=proxy.reveal() if proxy is not None else None,
        base_url=base_url,
        timeout=httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.write_timeout,
            pool=settings.pool_timeout,
        ),
        verify=tls.context,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        headers={"User-Agent": f"reconciler/{__version__}"},
        follow_redirects=False,
        trust_env=False,
    )


@contextmanager
def open_vendors(settings: Settings) -> Iterator[Vendors]:
    orion_url = require_safe_url(settings.orion.base_url, "ORION_BASE_URL")
    sei_url = require_safe_url(settings.sei.base_url, "SEI_BASE_URL")
    policy = HttpPolicy(
        max_attempts=settings.max_attempts, retry_after_cap=settings.retry_after_cap, deadline=settings.request_deadline
    )
    redact = Redactor()
    if settings.proxy is not None:
        for secret in settings.proxy.secrets():  # a proxy's error may quote its URL
            redact.add(secret)
    connections = max(settings.parallelism, settings.read_workers) * 2 + 2
    o_tls, s_tls = orion_tls(settings), sei_tls(settings)
    orion_http = _client(orion_url, settings, o_tls, connections)
    sei_http = _client(sei_url, settings, s_tls, connections)
    sei_client = SeiClient(settings.sei, sei_http, redact=redact, policy=policy, gate=PauseGate(), tls=s_tls)
    try:
        yield Vendors(
            OrionClient(settings.orion, orion_http, redact=redact, policy=policy, gate=PauseGate(), tls=o_tls),
            sei_client,
            redact,
        )
    finally:
        try:
            sei_client.revoke()  # a minted SEI token is revoked at the end of the run, where credentials allow
        finally:
            orion_http.close()
            sei_http.close()
