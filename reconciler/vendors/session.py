"""A connection to both vendors for one command: the real ones, or the in-process sandbox.

`--sandbox` starts the emulator on a free loopback port, seeded with demo state, with fresh random
credentials that are never printed, and points both clients at it; environment credentials are not
used (nor sent anywhere) in that mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from reconciler.config import OrionSettings, Secret, SeiSettings, Settings
from reconciler.config.urls import endpoint_label
from reconciler.vendors import Vendors, open_vendors

__all__ = ["Session", "open_session"]

# In-process batches take this long, so a newcomer's `apply --sandbox` shows real progress.
SANDBOX_BATCH_LATENCY = 1.0


@dataclass
class Session:
    vendors: Vendors
    settings: Settings
    sandbox: object | None = None

    @property
    def endpoints(self) -> dict[str, str]:
        """What saved plans record and receipts compare: base URLs without userinfo, or 'sandbox'."""
        if self.sandbox is not None:
            return {"orion": "sandbox", "sei": "sandbox", "environment": "in-process sandbox"}
        return {
            "orion": endpoint_label(self.settings.orion.base_url),
            "sei": endpoint_label(self.settings.sei.base_url),
            "environment": self.settings.environment or "custom",
        }

    @property
    def environment_line(self) -> str:
        """For people: the environment and both hosts, never credentials."""
        e = self.endpoints
        host = lambda url: url.split("://", 1)[-1].split("/", 1)[0]  # noqa: E731
        return f"Environment: {e['environment']} (Orion {host(e['orion'])}, SEI {host(e['sei'])})"


@contextmanager
def open_session(settings: Settings, *, sandbox: bool = False) -> Iterator[Session]:
    if not sandbox:
        with open_vendors(settings) as vendors:
            yield Session(vendors, settings)
        return
    from reconciler.sandbox.entry import embedded  # the one door into the emulator (import-linter)

    with embedded(SANDBOX_BATCH_LATENCY) as sb:
        settings = settings.with_overrides(
            orion=OrionSettings(sb.orion_url, Secret(sb.creds.orion_token)),
            sei=SeiSettings(sb.sei_url, Secret(sb.creds.sei_token), Secret(sb.creds.sei_app_key)),
        )
        with open_vendors(settings) as vendors:
            yield Session(vendors, settings, sb)
