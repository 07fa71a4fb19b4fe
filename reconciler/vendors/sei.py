"""SEI Trade Order Management v1: trade tickets (API.md §2).

Every call sends `Authorization: Bearer <token>` and `AppKey`. The token is given (SEI_TOKEN) or
minted from /v2/oauthtoken; minted tokens live 60 minutes and cannot be refreshed, so a new one is
minted shortly before expiry, and once more on a 401. Real SEI needs two-way TLS: the client
certificate is loaded into an ssl.SSLContext by `vendors.sei_tls` (tls.py).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from reconciler.config import SeiSettings
from reconciler.errors import ApiAuthError, ApiError, ConfigError
from reconciler.fields import SEI_PAGE_LIMIT
from reconciler.vendors.answers import ambiguous_answer, expect_int, expect_object, expect_objects
from reconciler.vendors.auth import Minted, TokenAuth
from reconciler.vendors.http import VendorHttp
from reconciler.vendors.redaction import Redactor
from reconciler.vendors.retry import HttpPolicy, PauseGate
from reconciler.vendors.tls import VendorTls

__all__ = ["SeiClient"]

TICKETS = "/v1/order/tradetickets"
TOKEN = "/v2/oauthtoken"
# Mint a new token when less than this is left of its life, so no request starts on a dying token.
TOKEN_RENEW_MARGIN = 300.0
# SEI tokens die after 30 minutes without use [docs]: mint anew after 25 idle minutes.
TOKEN_IDLE_RENEW = 25 * 60.0
TLS_VARIABLES = "SEI_CLIENT_CERT, SEI_CLIENT_KEY, SEI_CA_BUNDLE"
_FATAL_AUTH = ("invalid apikey", "authorization failed", "traffic pattern is invalid")
# Paging ends at the page count totalCount implies, plus this slack; a server that keeps handing out
# cursors past it (or without a totalCount, past MAX_PAGES) is refused instead of followed forever.
PAGE_SLACK = 2
MAX_PAGES = 10_000


class SeiClient:
    def __init__(
        self,
        settings: SeiSettings,
        client: httpx.Client,
        *,
        redact: Redactor,
        policy: HttpPolicy = HttpPolicy(),
        gate: PauseGate | None = None,
        clock: Callable[[], float] = time.monotonic,
        tls: VendorTls | None = None,
    ):
        self.settings = settings
        if settings.app_key is None:
            raise ConfigError("SEI_APP_KEY is not set: every SEI call needs the AppKey header")
        for s in (settings.token, settings.app_key, settings.app_secret, settings.password):
            if s is not None:
                redact.add(s.reveal())
        self.redact = redact
        app_key = settings.app_key.reveal()
        self.auth = TokenAuth(
            vendor="SEI",
            given=settings.token.reveal() if settings.token else None,
            given_variable="SEI_TOKEN",
            mint_variables="SEI_APP_SECRET, SEI_USERNAME and SEI_PASSWORD",
            mint=self._mint if settings.app_secret and settings.username and settings.password else None,
            headers=lambda token: {"Authorization": f"Bearer {token}", "AppKey": app_key},
            fatal=self._fatal_auth,
            renew_margin=TOKEN_RENEW_MARGIN,
            idle_renew=TOKEN_IDLE_RENEW,
            clock=clock,
        )
        self.http = VendorHttp(
            "sei",
            client,
            auth=self.auth,
            redact=redact,
            policy=policy,
            gate=gate,
            tls=tls or VendorTls("SEI", TLS_VARIABLES, True, two_way=True),
            url_variable="SEI_BASE_URL",
        )

    # --- auth ---------------------------------------------------------------------------------------

    def _fatal_auth(self, status: int, body: dict) -> str | None:
        """A 401/403 that no new token can cure: the app has no access to this API or environment [docs]."""
        text = f"{body.get('code', '')} {body.get('message', '')}".lower()
        if status in (401, 403) and (
            any(m in text for m in _FATAL_AUTH) or body.get("code") == "gateway.access.failure"
        ):
            return (
                f"SEI refused the app at {self.http.host}: {str(body.get('message'))[:120]}. Check SEI_APP_KEY (the "
                "app must have access to this API in this environment), the client certificate and that the "
                "caller's IP address is whitelisted"
            )
        return None

    def _basic(self) -> str:
        s = self.settings
        assert s.app_key is not None and s.app_secret is not None
        basic = base64.b64encode(f"{s.app_key.reveal()}:{s.app_secret.reveal()}".encode()).decode()
        self.redact.add(basic)
        return basic

    def _mint(self) -> Minted:
        """POST /v2/oauthtoken, client credentials with the user's name and password [docs]."""
        s = self.settings
        assert s.password is not None
        try:
            resp = self.http.request(
                "POST",
                TOKEN,
                safe=True,
                authenticated=False,
                headers={"Authorization": f"Basic {self._basic()}"},
                data={"grant_type": "client_credentials", "username": s.username, "password": s.password.reveal()},
                quote_body=False,
            )  # a token endpoint's body is never quoted: it may hold the token
        except ApiAuthError as e:
            raise ApiAuthError(
                f"SEI refused the login at {self.http.host}: check SEI_APP_KEY and SEI_APP_SECRET (the app's "
                "credentials) and SEI_USERNAME/SEI_PASSWORD",
                method="POST",
                path=TOKEN,
                status=e.status,
                tracking_id=e.tracking_id,
            ) from e
        body = self.http.read_json(resp, "POST", TOKEN, quote_body=False)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ApiError("the token answer has no access_token", method="POST", path=TOKEN)
        self.redact.add(token)
        return Minted(token, float(body.get("expires_in") or 3600))

    def revoke(self) -> None:
        """Revoke a token this client minted (grant_type=invalidate_token), at the end of a run."""
        token = self.auth.minted_token
        self.auth.forget()
        if not token or not (self.settings.app_secret and self.settings.app_key):
            return
        try:
            self.http.request(
                "POST",
                TOKEN,
                safe=True,
                authenticated=False,
                quote_body=False,
                headers={"Authorization": f"Basic {self._basic()}"},
                data={"grant_type": "invalidate_token", "token": token},
            )
        except ApiError:
            pass  # the token dies within the hour anyway; a failed revocation must not fail the run

    # --- reads --------------------------------------------------------------------------------------

    def iter_tickets(
        self, *, ticket_id: int | None = None, status: str | None = None, limit: int = SEI_PAGE_LIMIT
    ) -> Iterator[dict]:
        """Every order row, following the cursor until `paging.next` is null."""
        params: dict[str, Any] = {"limit": min(limit, SEI_PAGE_LIMIT)}
        if ticket_id is not None:
            params["id"] = ticket_id
        if status:
            params["status"] = status
        seen_cursors: set[str] = set()
        pages = 0
        while True:
            pages += 1
            resp = self.http.request("GET", TICKETS, safe=True, params=params)
            body = expect_object(self.http.read_json(resp, "GET", TICKETS), "GET", TICKETS)
            rows = expect_objects(body.get("data"), "GET", TICKETS, "data", allow_null=True)
            for row in rows:
                row["tradeTicketId"] = expect_int(row.get("tradeTicketId"), "GET", TICKETS, "a tradeTicketId")
            yield from rows
            paging = body.get("paging") or {}
            if not isinstance(paging, dict):
                raise ApiError("paging is not an object", method="GET", path=TICKETS)
            cursor = paging.get("next")
            if not cursor:
                return
            total = paging.get("totalCount")
            limit_used = params["limit"]
            most = (-(-int(total) // limit_used) + PAGE_SLACK) if isinstance(total, int) and total >= 0 else MAX_PAGES
            if pages >= min(most, MAX_PAGES):
                raise ApiError(
                    f"paging did not end after {pages} pages (totalCount {total!r}, limit {limit_used}); "
                    "stopping instead of following cursors forever",
                    method="GET",
                    path=TICKETS,
                )
            if not isinstance(cursor, str) or cursor in seen_cursors:
                raise ApiError("paging returned a cursor twice; stopping to avoid a loop", method="GET", path=TICKETS)
            seen_cursors.add(cursor)
            params["cursor"] = cursor

    def get_ticket(self, ticket_id: int) -> list[dict]:
        """The rows of one ticket (one per filled order, or one with orderId null); [] if not at SEI."""
        return [r for r in self.iter_tickets(ticket_id=ticket_id) if r["tradeTicketId"] == ticket_id]

    # --- write --------------------------------------------------------------------------------------

    def submit_ticket(self, instruction: dict) -> dict:
        """POST one instruction. Never retried once sent: AmbiguousWriteError, TicketExistsError instead.

        A 2xx whose body is not the echoed instruction is in doubt, never a refusal: SEI may hold it.
        """
        resp = self.http.request("POST", TICKETS, safe=False, json_body={"data": instruction})
        body = self.http.read_json(resp, "POST", TICKETS, write=True)
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise ambiguous_answer(resp, "POST", TICKETS, "its answer is not the echoed instruction", self.redact)
        return body["data"]
