"""One careful HTTP request: the shared retry policy and pause, write classification, bounded answers.

Rules it enforces (API.md §3):
- Writes are classified here, once (`ApiError.refused`): *refused* only when the server surely did not
  act (the request never left: connection refused, connect or pool time-out, a failure while preparing
  it or minting its token; or the server said no before acting: a 4xx other than 408/409, 429/503 with
  Retry-After). Those are the only writes ever retried. Anything after the request may have left (a
  time-out, a dropped connection, a 5xx, a 408, an answer too large or too slow) raises
  AmbiguousWriteError, and so does a 2xx whose body the client cannot read (`read_json` and the
  clients' parsers): the caller reads live state, never sends again blindly.
- Bodies are serialised with allow_nan=False: a NaN or Infinity is a bug that never leaves the process.
- Auth is the vendor's `TokenAuth` (auth.py), handed to httpx; retries and pauses are retry.py's;
  TLS refusals are told apart by tls.py; every message passes redaction.py's Redactor.
- Every error carries method, path, status and the vendor trackingId; bodies are quoted only up to
  BODY_EXCERPT_LIMIT, only after redaction, and never for a token endpoint.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.errors import (
    AmbiguousWriteError,
    ApiAuthError,
    ApiError,
    NotFoundError,
    TicketExistsError,
    TlsConfigError,
)
from reconciler.vendors.answers import ambiguous_answer, error_from_answer, tracking_id, tracking_suffix
from reconciler.vendors.auth import TokenAuth
from reconciler.vendors.redaction import Redactor
from reconciler.vendors.retry import HttpPolicy, PauseGate, backoff, parse_retry_after
from reconciler.vendors.tls import VendorTls

__all__ = ["VendorHttp"]

log = logging.getLogger("reconciler.http")

# A full registration chunk (500 × ~3 KB) is ~2 MB; 256 MiB refuses a runaway answer before it
# exhausts memory, far above anything legitimate.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
_TLS_MARKERS = ("certificate", "ssl", "tls", "handshake")
_STATUS_ERRORS: dict[int, type[ApiError]] = {
    401: ApiAuthError,
    403: ApiAuthError,
    404: NotFoundError,
    409: TicketExistsError,
}


@dataclass
class _Attempts:
    """One logical request's budget: attempts made, throttled answers ridden out, its deadline."""

    deadline: float
    made: int = 0
    throttled: int = 0


class VendorHttp:
    """Sends requests for one vendor with its auth, the shared policy and the shared pause."""

    def __init__(
        self,
        vendor: str,
        client: httpx.Client,
        *,
        redact: Redactor,
        auth: TokenAuth | None = None,
        policy: HttpPolicy = HttpPolicy(),
        gate: PauseGate | None = None,
        sleep: Callable[[float], None] = time.sleep,
        tls: VendorTls | None = None,
        url_variable: str = "",
    ):
        self.vendor, self.client, self.redact, self.auth = vendor, client, redact, auth
        self.policy, self.gate, self.sleep = policy, gate or PauseGate(), sleep
        self.tls, self.url_variable = tls, url_variable

    @property
    def host(self) -> str:
        """The vendor's host and port, never userinfo: what errors may name."""
        return urllib.parse.urlsplit(str(self.client.base_url)).netloc.rpartition("@")[2]

    def request(
        self,
        method: str,
        path: str,
        *,
        safe: bool,
        params: dict | None = None,
        json_body: Any = None,
        data: dict | None = None,
        headers: dict | None = None,
        authenticated: bool = True,
        quote_body: bool = True,
    ) -> httpx.Response:
        """One logical request. For a write (`safe=False`) every failure is classified: `refused=True`
        only where the server surely did not act, AmbiguousWriteError where it may have."""
        content = None
        if json_body is not None:
            try:  # NaN and Infinity are not JSON; sending them would be a bug, never a value
                content = json.dumps(json_body, separators=(",", ":"), allow_nan=False).encode()
            except ValueError as e:
                raise ApiError(
                    "refusing to send a non-finite number (NaN or Infinity); nothing was sent",
                    method=method,
                    path=path,
                    refused=True,
                ) from e
            headers = {**(headers or {}), "Content-Type": "application/json"}
        budget = _Attempts(time.monotonic() + self.policy.deadline)
        while True:
            budget.made += 1
            resp = self._attempt(
                method,
                path,
                safe,
                budget,
                params=params,
                content=content,
                data=data,
                headers=headers or {},
                auth=self.auth if authenticated else None,
            )
            if resp is None:
                continue  # the request never left, or was safe to repeat: try again
            if self._throttled(resp, method, path, safe, budget, quote_body):
                continue
            if resp.status_code >= 500 or resp.status_code == 408:
                if not safe:
                    raise self._error_of(
                        resp,
                        method,
                        path,
                        AmbiguousWriteError,
                        f"HTTP {resp.status_code} answering a write; its outcome is unknown",
                        quote_body,
                    )
                if budget.made < self.policy.max_attempts and time.monotonic() < budget.deadline:
                    self.sleep(backoff(self.policy, budget.made))
                    continue
                raise self._error_of(
                    resp, method, path, ApiError, f"server error after {budget.made} attempts", quote_body
                )
            if resp.status_code >= 400:
                raise self._refused(resp, method, path, authenticated, quote_body)
            return resp

    def read_json(
        self, resp: httpx.Response, method: str, path: str, *, write: bool = False, quote_body: bool = True
    ) -> Any:
        """The answer's JSON. An unreadable 2xx to a write is in doubt (the server acted), never a refusal."""
        try:
            return json.loads(resp.content)
        except ValueError as e:
            if write:
                raise ambiguous_answer(resp, method, path, "the answer is not JSON", self.redact) from e
            raise ApiError(
                "the answer is not JSON",
                method=method,
                path=path,
                status=resp.status_code,
                body_excerpt=self.redact(resp.text) if quote_body else "",
            ) from e

    # --- one attempt ----------------------------------------------------------------------------------

    def _attempt(
        self,
        method: str,
        path: str,
        safe: bool,
        budget: _Attempts,
        *,
        params,
        content,
        data,
        headers: dict,
        auth: TokenAuth | None,
    ) -> httpx.Response | None:
        """Send once. None: the request surely never left, or may be repeated (retry after a backoff)."""
        try:
            self.gate.wait(budget.deadline)
        except TimeoutError as e:
            raise ApiError(str(e), method=method, path=path, refused=True) from e
        started = time.monotonic()
        try:
            resp = self._send(method, path, params, content, data, headers, auth, budget.deadline)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            self._raise_if_tls(e, method, path)
            # the request never left: safe to repeat, even for a write
            self._retry_or_raise(e, method, path, budget, "could not connect")
            return None
        except (
            httpx.TimeoutException,
            httpx.NetworkError,
            httpx.RemoteProtocolError,
            _DeadlineExceeded,
            _TooLarge,
        ) as e:
            self._raise_if_tls(e, method, path)
            if not safe:
                raise AmbiguousWriteError(
                    f"the request was sent but no complete answer came back ({type(e).__name__}); "
                    "its outcome is unknown, so live state must be read before any re-send",
                    method=method,
                    path=path,
                ) from e
            if isinstance(e, _TooLarge):
                raise ApiError(str(e), method=method, path=path) from e
            self._retry_or_raise(e, method, path, budget, "no complete answer")
            return None
        except httpx.ProxyError as e:  # the tunnel was refused: no byte of the request reached the vendor
            raise ApiError(
                self.redact(
                    f"the proxy refused the tunnel ({e}); check HTTPS_PROXY or `proxy:` in reconciler.yaml (its "
                    f"credentials), or add this host to NO_PROXY"
                ),
                method=method,
                path=path,
                refused=True,
            ) from e
        except httpx.HTTPError as e:
            cls = ApiError if safe else AmbiguousWriteError
            raise cls(self.redact(f"request failed: {type(e).__name__}: {e}"), method=method, path=path) from e
        log.debug(
            "%s %s %s → %s in %.0f ms%s",
            self.vendor,
            method,
            path,
            resp.status_code,
            (time.monotonic() - started) * 1000,
            tracking_suffix(resp),
        )
        return resp

    def _send(self, method, path, params, content, data, headers, auth, deadline) -> httpx.Response:
        with self.client.stream(
            method, path, params=params, content=content, data=data, headers=headers, auth=auth
        ) as resp:
            chunks = []
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise _TooLarge(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise _DeadlineExceeded()
                chunks.append(chunk)
        return httpx.Response(resp.status_code, headers=resp.headers, content=b"".join(chunks), request=resp.request)

    # --- what an answer means -------------------------------------------------------------------------

    def _throttled(
        self, resp: httpx.Response, method: str, path: str, safe: bool, budget: _Attempts, quote_body: bool
    ) -> bool:
        """A 429/503 to ride out (True: pause every worker, then try again), or raise."""
        if resp.status_code not in (429, 503):
            return False
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if retry_after is None and not safe:
            raise self._error_of(
                resp,
                method,
                path,
                AmbiguousWriteError,
                f"answered {resp.status_code} without Retry-After to a write; its outcome is unknown",
                quote_body,
            )
        delay = min(
            retry_after if retry_after is not None else backoff(self.policy, budget.made), self.policy.retry_after_cap
        )
        self.gate.pause(delay + random.uniform(0, min(1.0, delay * 0.1)))
        # a vendor that says when to come back is honoured until the deadline, not an attempt count
        budget.throttled += 1
        budget.made -= 1
        if budget.throttled >= self.policy.max_throttled or time.monotonic() + delay > budget.deadline:
            raise self._error_of(
                resp,
                method,
                path,
                ApiError,
                f"still throttled after {budget.throttled} answers",
                quote_body,
                refused=True,
            )
        return True

    def _refused(self, resp: httpx.Response, method: str, path: str, authenticated: bool, quote_body: bool) -> ApiError:
        """A 4xx: the server said no before acting (a 409 excepted: the resource exists, perhaps from our own
        earlier attempt, which only a read-back resolves)."""
        status = resp.status_code
        why = self.auth.refusal(resp) if authenticated and self.auth and status in (401, 403) else None
        if why:  # a refusal no new token cures, said in words that name the variable to fix
            return ApiAuthError(
                self.redact(why), method=method, path=path, status=status, tracking_id=tracking_id(resp), refused=True
            )
        return self._error_of(
            resp, method, path, _STATUS_ERRORS.get(status, ApiError), "refused", quote_body, refused=status != 409
        )

    def _retry_or_raise(self, e: Exception, method: str, path: str, budget: _Attempts, what: str) -> None:
        delay = backoff(self.policy, budget.made)
        if budget.made >= self.policy.max_attempts or time.monotonic() + delay > budget.deadline:
            where = f" to {self.host} ({self.url_variable})" if self.url_variable else f" to {self.host}"
            # only a connection that was never made proves the request never left
            raise ApiError(
                self.redact(f"{what}{where} after {budget.made} attempts ({type(e).__name__}: {e})"),
                method=method,
                path=path,
                refused=what == "could not connect",
            ) from e
        log.debug("%s %s %s: %s, retrying in %.2f s", self.vendor, method, path, type(e).__name__, delay)
        self.sleep(delay)

    def _error_of(
        self,
        resp: httpx.Response,
        method: str,
        path: str,
        cls: type[ApiError],
        what: str,
        quote_body: bool = True,
        refused: bool = False,
    ) -> ApiError:
        return error_from_answer(resp, method, path, cls, what, self.redact, quote_body=quote_body, refused=refused)

    def _raise_if_tls(self, e: Exception, method: str, path: str) -> None:
        chain: list[BaseException] = []
        cur: BaseException | None = e
        while cur is not None and len(chain) < 10:
            chain.append(cur)
            cur = cur.__cause__ or cur.__context__
        reason = None
        if any(isinstance(c, ssl.SSLError) for c in chain) or any(
            m in str(c).lower() for c in chain for m in _TLS_MARKERS
        ):
            reason = str(e) or type(e).__name__
        elif self.tls is not None and isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            # Under TLS 1.3 a refused client certificate arrives after the request was written, often
            # as a bare disconnect: ask a fresh connection whether the server refuses our handshake.
            reason = self.tls.probe()
        if reason:
            hint = self.tls.hint(reason) if self.tls is not None else f"the TLS handshake was refused ({reason})"
            raise TlsConfigError(self.redact(hint), method=method, path=path) from e


class _TooLarge(Exception):
    """The answer exceeded MAX_RESPONSE_BYTES."""


class _DeadlineExceeded(Exception):
    """The answer trickled in past the request's overall deadline."""
