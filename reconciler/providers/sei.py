"""SEI Trade Order Management v1: trade tickets (API.md §2).

Every call sends `Authorization: Bearer <token>` and `AppKey`. The token is given (SEI_TOKEN) or
minted from /v2/oauthtoken; minted tokens live 60 minutes and cannot be refreshed, so a new one is
minted shortly before expiry, and once more on a 401. Real SEI needs two-way TLS: the client
certificate is loaded into an ssl.SSLContext by `providers.build_sei_ssl_context`.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any, Iterator

import httpx

from reconciler.config import SeiSettings
from reconciler.errors import ApiError, ConfigError
from reconciler.fields import SEI_PAGE_LIMIT
from reconciler.providers._http import HttpPolicy, PauseGate, Redactor, VendorHttp

__all__ = ["SeiClient"]

TICKETS = "/v1/order/tradetickets"
TOKEN = "/v2/oauthtoken"
# Mint a new token when less than this is left of its life, so no request starts on a dying token.
TOKEN_RENEW_MARGIN = 300.0


class SeiClient:
    def __init__(self, settings: SeiSettings, client: httpx.Client, *, redact: Redactor,
                 policy: HttpPolicy = HttpPolicy(), gate: PauseGate | None = None,
                 clock=time.monotonic, tls_probe=None):
        self.settings = settings
        if settings.app_key is None:
            raise ConfigError("SEI_APP_KEY is not set: every SEI call needs the AppKey header")
        for s in (settings.token, settings.app_key, settings.app_secret, settings.password):
            if s is not None:
                redact.add(s.reveal())
        self.redact = redact
        self._clock = clock
        self._token = settings.token.reveal() if settings.token else None
        self._expires_at = float("inf") if settings.token else 0.0
        self._lock = threading.Lock()
        self.http = VendorHttp("sei", client, auth_headers=self._auth_headers, reauth=self._renew,
                               redact=redact, policy=policy, gate=gate, tls_probe=tls_probe)

    # --- auth ---------------------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - TOKEN_RENEW_MARGIN:
                self._mint_locked()
            return {"Authorization": f"Bearer {self._token}", "AppKey": self.settings.app_key.reveal()}

    def _renew(self) -> None:
        with self._lock:
            self._mint_locked()

    def _mint_locked(self) -> None:
        s = self.settings
        if not (s.app_secret and s.username and s.password):
            if self._token is not None:
                return  # a given token cannot be renewed: the 401 will surface
            raise ConfigError("SEI credentials are missing: set SEI_TOKEN, or SEI_APP_SECRET, SEI_USERNAME and SEI_PASSWORD")
        basic = base64.b64encode(f"{s.app_key.reveal()}:{s.app_secret.reveal()}".encode()).decode()
        self.redact.add(basic)
        resp = self.http.request(
            "POST", TOKEN, safe=True, authenticated=False, headers={"Authorization": f"Basic {basic}"},
            data={"grant_type": "client_credentials", "username": s.username, "password": s.password.reveal()})
        body = _json(resp, "POST", TOKEN)
        token = body.get("access_token")
        if not token:
            raise ApiError("the token answer has no access_token", method="POST", path=TOKEN)
        self.redact.add(token)
        self._token = token
        self._expires_at = self._clock() + float(body.get("expires_in") or 3600)

    # --- reads --------------------------------------------------------------------------------------

    def iter_tickets(self, *, ticket_id: int | None = None, status: str | None = None,
                     limit: int = SEI_PAGE_LIMIT) -> Iterator[dict]:
        """Every order row, following the cursor until `paging.next` is null."""
        params: dict[str, Any] = {"limit": min(limit, SEI_PAGE_LIMIT)}
        if ticket_id is not None:
            params["id"] = ticket_id
        if status:
            params["status"] = status
        seen_cursors: set[str] = set()
        while True:
            body = _json(self.http.request("GET", TICKETS, safe=True, params=params), "GET", TICKETS)
            yield from body.get("data") or []
            cursor = (body.get("paging") or {}).get("next")
            if not cursor:
                return
            if cursor in seen_cursors:
                raise ApiError("paging returned a cursor twice; stopping to avoid a loop", method="GET", path=TICKETS)
            seen_cursors.add(cursor)
            params["cursor"] = cursor

    def get_ticket(self, ticket_id: int) -> list[dict]:
        """The rows of one ticket (one per filled order, or one with orderId null); [] if not at SEI."""
        return [r for r in self.iter_tickets(ticket_id=ticket_id) if int(r.get("tradeTicketId", -1)) == ticket_id]

    # --- write --------------------------------------------------------------------------------------

    def submit_ticket(self, instruction: dict) -> dict:
        """POST one instruction. Never retried once sent: AmbiguousWriteError, TicketExistsError instead."""
        resp = self.http.request("POST", TICKETS, safe=False, json_body={"data": instruction})
        return _json(resp, "POST", TICKETS).get("data") or {}


def _json(resp: httpx.Response, method: str, path: str) -> Any:
    try:
        body = resp.json()
    except ValueError:
        raise ApiError("the answer is not JSON", method=method, path=path, status=resp.status_code,
                       body_excerpt=resp.text) from None
    if not isinstance(body, dict):
        raise ApiError("the answer is not a JSON object", method=method, path=path, status=resp.status_code)
    return body
