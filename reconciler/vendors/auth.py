"""One token flow for every vendor, as an httpx.Auth: a given token, or one minted on demand; renewed
before it dies and once on a 401; never minted again after a refusal that no new token can cure.

Orion and SEI differ only in what they hand this class: how to mint (`mint`, which performs the
vendor's token call and returns a `Minted`), how a token goes into the headers (`headers`), how long a
minted token lives and how long it may sit idle, and which refusals are fatal (`fatal`: SEI's "Invalid
ApiKey" means the app has no access; minting again would only be refused again). An error raised here
means the request never reached the server (or was refused with a 401 before it acted): it is always
`refused`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import httpx

from reconciler.errors import ApiAuthError, ApiError, ConfigError

__all__ = ["Minted", "TokenAuth"]


@dataclass(frozen=True)
class Minted:
    token: str
    expires_in: float | None = None  # seconds; None: until refused


def _json_object(response: httpx.Response) -> dict:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class TokenAuth(httpx.Auth):
    """The token flow one vendor's client shares across its worker threads."""

    def __init__(
        self,
        *,
        vendor: str,
        given: str | None,
        given_variable: str,
        mint: Callable[[], Minted] | None,
        mint_variables: str,
        headers: Callable[[str], dict[str, str]],
        fatal: Callable[[int, dict], str | None] = lambda status, body: None,
        renew_margin: float = 0.0,
        idle_renew: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.vendor, self.given_variable, self.mint_variables = vendor, given_variable, mint_variables
        self._mint, self._headers, self._fatal = mint, headers, fatal
        self._renew_margin, self._idle_renew, self._clock = renew_margin, idle_renew, clock
        self._token = given
        self._given = given is not None
        self._minted = False
        self._expires_at = float("inf")
        self._last_used = clock()
        self._mint_error: ApiError | None = None  # a refused login is not tried again in this run
        self._lock = threading.Lock()

    # --- the token ----------------------------------------------------------------------------------

    @property
    def can_mint(self) -> bool:
        return self._mint is not None

    @property
    def minted_token(self) -> str | None:
        """The token this flow minted (for revocation at the end of a run), if it minted one."""
        return self._token if self._minted else None

    def forget(self) -> None:
        """Drop a minted token (after revoking it); a given one stays."""
        with self._lock:
            if self._minted:
                self._token, self._minted = None, False

    def token(self) -> str:
        """The token to send now: minted when there is none, or when it is about to die or has sat idle."""
        with self._lock:
            now = self._clock()
            idle = self._minted and self._idle_renew is not None and now - self._last_used >= self._idle_renew
            if self._token is None or now >= self._expires_at - self._renew_margin or idle:
                self._mint_locked()
            self._last_used = self._clock()
            assert self._token is not None
            return self._token

    def renew(self, refused: str) -> bool:
        """The server refused `refused`: mint a new token (unless another thread already did). False where
        none can be minted (a given token and no credentials to mint with)."""
        with self._lock:
            if self._token != refused:
                return True
            if self._mint is None:
                return False
            self._mint_locked()
            return True

    def _mint_locked(self) -> None:
        if self._mint_error is not None:
            raise self._mint_error
        if self._mint is None:
            raise ConfigError(
                f"{self.vendor} credentials are missing: set {self.given_variable}, or {self.mint_variables}"
            )
        try:
            minted = self._mint()
        except ApiAuthError as e:
            e.refused = True
            self._mint_error = e
            raise
        except ApiError as e:
            e.refused = True  # the token call failed: the request it was for never left
            raise
        self._token, self._minted = minted.token, True
        self._expires_at = self._clock() + minted.expires_in if minted.expires_in else float("inf")

    # --- httpx --------------------------------------------------------------------------------------

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers.update(self._headers(token))
        response = yield request
        if response.status_code != 401:
            return
        response.read()
        if self._fatal(401, _json_object(response)) is None and self.renew(token):
            request.headers.update(self._headers(self.token()))
            yield request

    # --- refusals that stand ------------------------------------------------------------------------

    def refusal(self, response: httpx.Response) -> str | None:
        """Why a 401/403 stands, naming what to fix: a fatal refusal, or a given token refused."""
        body = _json_object(response)
        fatal = self._fatal(response.status_code, body)
        if fatal:
            return fatal
        if response.status_code == 401 and self._given and not self._minted:
            how = f", or set {self.mint_variables} to mint one" if self._mint is None else ""
            return (
                f"{self.vendor} refused the token in {self.given_variable} (HTTP 401): check that it is "
                f"current and for this environment{how}"
            )
        return None

    def is_fatal(self, status: int, body: dict) -> bool:
        return self._fatal(status, body) is not None
