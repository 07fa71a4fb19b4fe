"""Vendor clients on httpx.MockTransport, for unit tests of the clients and of what reads their answers."""

from __future__ import annotations

import time

import httpx

from reconciler.config import OrionSettings, Secret, SeiSettings, Settings
from reconciler.vendors import HttpPolicy, OrionClient, Redactor, SeiClient

__all__ = ["FAST", "orion", "sei", "settings_for"]

FAST = HttpPolicy(max_attempts=4, backoff_base=0.001, backoff_cap=0.01, retry_after_cap=0.2, deadline=5)


def orion(handler, *, token="tok", username=None, password=None, policy=FAST, gate=None, redact=None) -> OrionClient:
    client = httpx.Client(base_url="http://127.0.0.1/api", transport=httpx.MockTransport(handler))
    settings = OrionSettings(
        "http://127.0.0.1/api",
        Secret(token) if token else None,
        username,
        Secret(password) if password else None,
        client_id="cid" if username else None,
        client_secret=Secret("csecret-abcd") if username else None,
    )
    return OrionClient(settings, client, redact=redact or Redactor(), policy=policy, gate=gate)


def sei(handler, *, token="tok", clock=time.monotonic, policy=FAST, **creds) -> SeiClient:
    client = httpx.Client(base_url="http://127.0.0.1", transport=httpx.MockTransport(handler))
    settings = SeiSettings(
        "http://127.0.0.1",
        Secret(token) if token else None,
        Secret(creds.get("app_key", "key-1234")),
        Secret(creds["app_secret"]) if "app_secret" in creds else None,
        creds.get("username"),
        Secret(creds["password"]) if "password" in creds else None,
    )
    return SeiClient(settings, client, redact=Redactor(), policy=policy, clock=clock)


def settings_for(sb, **overrides) -> Settings:
    """Settings that point both clients at a running sandbox, with quick retries for tests."""
    base = Settings(
        orion=OrionSettings(sb.orion_url, Secret(sb.creds.orion_token), "demo-user", Secret("demo-password")),
        sei=SeiSettings(
            sb.sei_url,
            Secret(sb.creds.sei_token),
            Secret(sb.creds.sei_app_key),
            Secret("demo-app-secret"),
            "demo-user",
            Secret("demo-password"),
        ),
        read_timeout=5,
        connect_timeout=2,
        request_deadline=20,
        retry_after_cap=5,
    )
    return base.with_overrides(**overrides)
