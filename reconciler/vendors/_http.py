"""One careful HTTP request: auth, retries for safe calls only, a shared Retry-After pause, redaction.

Rules it enforces (API.md §3):
- Safe requests (GET, and the bulk-read POST) are retried with jittered exponential backoff on
  connection failures, time-outs, 5xx and 429/503.
- Writes are classified here, once (`ApiError.refused`): *refused* only when the server surely did
  not act (the request never left: connection refused, connect or pool time-out, a failure while
  preparing it; or the server said no before acting: a 4xx other than 408/409, 429/503 with
  Retry-After). Those are the only writes ever retried. Anything after the request may have left
  (a time-out, a dropped connection, a 5xx, a 408, an answer too large or too slow) raises
  AmbiguousWriteError, and so does a 2xx whose body the client cannot read (`read_json` and the
  clients' parsers): the caller reads live state, never sends again blindly.
- Bodies are serialised with allow_nan=False: a NaN or Infinity is a bug that never leaves the process.
- 429/503 Retry-After (seconds or an HTTP date), capped, pauses *every* worker sharing the PauseGate.
- A refused TLS handshake or client certificate is a TlsConfigError, never retried.
- Every error carries method, path, status and the vendor trackingId; bodies are quoted only up to
  BODY_EXCERPT_LIMIT, only after every secret (and its URL-encoded and base64 forms, and anything
  shaped like a token) was masked, and never for a token endpoint.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import random
import re
import ssl
import urllib.parse
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx

from reconciler.escaping import bounded
from reconciler.errors import (
    BODY_EXCERPT_LIMIT,
    AmbiguousWriteError,
    ApiAuthError,
    ApiError,
    NotFoundError,
    TicketExistsError,
    TlsConfigError,
)

__all__ = ["HttpPolicy", "PauseGate", "Redactor", "VendorHttp", "ambiguous_answer", "parse_retry_after",
           "probe_tls_refusal"]

log = logging.getLogger("reconciler.http")

# A full registration chunk (500 × ~3 KB) is ~2 MB; 256 MiB refuses a runaway answer before it
# exhausts memory, far above anything legitimate.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
_TLS_MARKERS = ("certificate", "ssl", "tls", "handshake")


@dataclass(frozen=True)
class HttpPolicy:
    max_attempts: int = 5
    backoff_base: float = 0.5      # first retry waits up to 0.5 s, doubling
    backoff_cap: float = 20.0
    retry_after_cap: float = 120.0
    deadline: float = 300.0         # one logical request, every attempt and pause included
    max_throttled: int = 50         # 429/503 answers ridden out per request (the deadline usually ends it first)


class PauseGate:
    """One pause shared by all workers: a 429 seen by one worker holds back the others too."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self._until = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)

    def wait(self, deadline: float) -> None:
        while True:
            with self._lock:
                remaining = self._until - self._clock()
            if remaining <= 0:
                return
            if self._clock() + remaining > deadline:
                raise TimeoutError("the vendor asked to wait past this request's deadline")
            self._sleep(min(remaining, 0.25))


# Shapes that carry a credential even when its value is not known to us (a form-encoded token
# answer, an HTML error page echoing request headers): masked in every quoted body.
_TOKEN_SHAPES = re.compile(
    r"(?i)((?:access_token|refresh_token|id_token|token|password|passwd|client_secret|app_?secret|api_?key|appkey)"
    r"[\"']?\s*[=:]\s*[\"']?)([^\s\"'&,;<>]{4,})"
    r"|((?:authorization|appkey)[\"']?\s*[:=]\s*[\"']?(?:(?:session|bearer|basic)\s+)?)([^\s\"'&,;<>]{4,})"
    r"|(\b(?:Session|Bearer|Basic)\s+)([A-Za-z0-9._~+/=-]{8,})")


class Redactor:
    """Masks every known secret value, in its plain, URL-encoded and base64 forms, and token shapes."""

    def __init__(self, secrets: list[str] | None = None):
        self._secrets: list[str] = []
        for s in secrets or []:
            self.add(s)

    def add(self, value: str | None) -> None:
        if not value or len(value) < 4:
            return
        raw = value.encode()
        forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value),
                 base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
        forms |= {f.rstrip("=") for f in forms}
        with_new = [f for f in forms if len(f) >= 4 and f not in self._secrets]
        if with_new:
            self._secrets = sorted(self._secrets + with_new, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, "****")
        return _TOKEN_SHAPES.sub(lambda m: next(g for g in (m.group(1), m.group(3), m.group(5)) if g is not None)
                                 + "****", text)


def probe_tls_refusal(host: str, port: int, context: ssl.SSLContext, timeout: float = 2.0) -> str | None:
    """Why the server refuses a TLS session with `context`, or None if it accepts one.

    After the handshake an accepting server waits for a request; a refusing one (client certificate
    missing or untrusted) sends an alert or closes at once.
    """
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                tls.settimeout(0.5)
                try:
                    data = tls.recv(1)
                except TimeoutError:
                    return None
                except ssl.SSLError as e:
                    return e.reason or str(e)
                except OSError as e:
                    return f"connection reset after the handshake ({e.strerror or e})"
                return "the server closed the connection right after the handshake" if not data else None
    except ssl.SSLError as e:
        return e.reason or str(e)
    except OSError:
        return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date relative to now. None if absent or garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class VendorHttp:
    """Sends requests for one vendor with its auth, the shared policy and the shared pause."""

    def __init__(
        self,
        vendor: str,
        client: httpx.Client,
        *,
        auth_headers: Callable[[], dict[str, str]],
        reauth: Callable[[], None],
        redact: Redactor,
        policy: HttpPolicy = HttpPolicy(),
        gate: PauseGate | None = None,
        sleep: Callable[[float], None] = time.sleep,
        tls_probe: Callable[[], str | None] | None = None,
        url_variable: str = "",
        fatal_auth: Callable[[int, dict], str | None] | None = None,
    ):
        self.vendor = vendor
        self.url_variable = url_variable
        self.fatal_auth = fatal_auth or (lambda status, body: None)
        self.client = client
        self.auth_headers = auth_headers
        self.reauth = reauth
        self.redact = redact
        self.policy = policy
        self.gate = gate or PauseGate()
        self.sleep = sleep
        self.tls_probe = tls_probe

    @property
    def host(self) -> str:
        """The vendor's host and port, never userinfo: what errors may name."""
        return urllib.parse.urlsplit(str(self.client.base_url)).netloc.rpartition("@")[2]

    def request(self, method: str, path: str, *, safe: bool, params: dict | None = None, json_body: Any = None,
                content: bytes | None = None, data: dict | None = None, headers: dict | None = None,
                authenticated: bool = True, quote_body: bool = True) -> httpx.Response:
        """One logical request. For a write (`safe=False`) every failure is classified: `refused=True`
        only where the server surely did not act, AmbiguousWriteError where it may have."""
        deadline = time.monotonic() + self.policy.deadline
        attempt = 0
        throttled = 0
        reauthed = False
        if json_body is not None:
            try:  # NaN and Infinity are not JSON; sending them would be a bug, never a value
                content = json.dumps(json_body, separators=(",", ":"), allow_nan=False).encode()
            except ValueError as e:
                raise ApiError("refusing to send a non-finite number (NaN or Infinity); nothing was sent",
                               method=method, path=path, refused=True) from e
            headers = {**(headers or {}), "Content-Type": "application/json"}
        while True:
            attempt += 1
            try:
                self.gate.wait(deadline)
                hdrs = dict(headers or {})
                if authenticated:
                    hdrs.update(self.auth_headers())
            except TimeoutError as e:
                raise ApiError(str(e), method=method, path=path, refused=True) from e
            except ApiError as e:
                e.refused = True  # failed while preparing (e.g. the token could not be minted): never sent
                raise
            started = time.monotonic()
            try:
                resp = self._send(method, path, params, content, data, hdrs, deadline)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
                self._raise_if_tls(e, method, path)
                # the request never left: safe to repeat, even for a write
                self._retry_or_raise(e, method, path, attempt, deadline, "could not connect")
                continue
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, _DeadlineExceeded,
                    _TooLarge) as e:
                self._raise_if_tls(e, method, path)
                if not safe:
                    raise AmbiguousWriteError(
                        f"the request was sent but no complete answer came back ({type(e).__name__}); "
                        "its outcome is unknown, so live state must be read before any re-send",
                        method=method, path=path) from e
                if isinstance(e, _TooLarge):
                    raise ApiError(str(e), method=method, path=path) from e
                self._retry_or_raise(e, method, path, attempt, deadline, "no complete answer")
                continue
            except httpx.HTTPError as e:
                cls = ApiError if safe else AmbiguousWriteError
                raise cls(self.redact(f"request failed: {type(e).__name__}: {e}"), method=method, path=path) from e
            log.debug("%s %s %s → %s in %.0f ms%s", self.vendor, method, path, resp.status_code,
                      (time.monotonic() - started) * 1000, _tracking_suffix(resp))
            status = resp.status_code
            if status in (401, 403) and authenticated:
                fatal = self.fatal_auth(status, _json_object(resp))
                if fatal:   # never a reason to mint again
                    raise ApiAuthError(self.redact(fatal), method=method, path=path, status=status,
                                       tracking_id=_json_object(resp).get("trackingId"), refused=True)
            if status == 401 and authenticated and not reauthed:
                reauthed = True
                self.reauth()
                attempt -= 1  # a token renewal is not a retry; a 401 means the server did not act
                continue
            if status in (429, 503):
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if retry_after is None and not safe:
                    raise self._error(resp, method, path, AmbiguousWriteError,
                                      f"answered {status} without Retry-After to a write; its outcome is unknown",
                                      quote_body)
                delay = min(retry_after if retry_after is not None else self._backoff(attempt),
                            self.policy.retry_after_cap)
                self.gate.pause(delay + random.uniform(0, min(1.0, delay * 0.1)))
                # a vendor that says when to come back is honoured until the deadline, not an attempt count
                throttled += 1
                attempt -= 1
                if throttled >= self.policy.max_throttled or time.monotonic() + delay > deadline:
                    raise self._error(resp, method, path, ApiError, f"still throttled after {throttled} answers",
                                      quote_body, refused=True)
                continue
            if status >= 500 or status == 408:
                if not safe:
                    raise self._error(resp, method, path, AmbiguousWriteError,
                                      f"HTTP {status} answering a write; its outcome is unknown", quote_body)
                if attempt < self.policy.max_attempts and time.monotonic() < deadline:
                    self.sleep(self._backoff(attempt))
                    continue
                raise self._error(resp, method, path, ApiError, f"server error after {attempt} attempts", quote_body)
            if status >= 400:
                cls = {401: ApiAuthError, 403: ApiAuthError, 404: NotFoundError, 409: TicketExistsError}.get(status, ApiError)
                # 409: the resource exists, perhaps from our own earlier attempt: resolved by reading back
                raise self._error(resp, method, path, cls, "refused", quote_body, refused=status != 409)
            return resp

    def read_json(self, resp: httpx.Response, method: str, path: str, *, write: bool = False,
                  quote_body: bool = True) -> Any:
        """The answer's JSON. An unreadable 2xx to a write is in doubt (the server acted), never a refusal."""
        try:
            return json.loads(resp.content)
        except ValueError as e:
            if write:
                raise ambiguous_answer(resp, method, path, "the answer is not JSON", self.redact) from e
            raise ApiError("the answer is not JSON", method=method, path=path, status=resp.status_code,
                           body_excerpt=self.redact(resp.text) if quote_body else "") from e

    def _send(self, method, path, params, content, data, headers, deadline) -> httpx.Response:
        with self.client.stream(method, path, params=params, content=content, data=data, headers=headers) as resp:
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

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.policy.backoff_cap, self.policy.backoff_base * 2 ** (attempt - 1)))

    def _retry_or_raise(self, e: Exception, method: str, path: str, attempt: int, deadline: float, what: str) -> None:
        delay = self._backoff(attempt)
        if attempt >= self.policy.max_attempts or time.monotonic() + delay > deadline:
            where = f" to {self.host} ({self.url_variable})" if self.url_variable else f" to {self.host}"
            # only a connection that was never made proves the request never left
            raise ApiError(self.redact(f"{what}{where} after {attempt} attempts ({type(e).__name__}: {e})"),
                           method=method, path=path, refused=what == "could not connect") from e
        log.debug("%s %s %s: %s, retrying in %.2f s", self.vendor, method, path, type(e).__name__, delay)
        self.sleep(delay)

    def _raise_if_tls(self, e: Exception, method: str, path: str) -> None:
        chain: list[BaseException] = []
        cur: BaseException | None = e
        while cur is not None and len(chain) < 10:
            chain.append(cur)
            cur = cur.__cause__ or cur.__context__
        reason = None
        if any(isinstance(c, ssl.SSLError) for c in chain) or any(
                m in str(c).lower() for c in chain for m in _TLS_MARKERS):
            reason = str(e) or type(e).__name__
        elif self.tls_probe is not None and isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            # Under TLS 1.3 a refused client certificate arrives after the request was written, often
            # as a bare disconnect: ask a fresh connection whether the server refuses our handshake.
            reason = self.tls_probe()
        if reason:
            raise TlsConfigError(
                self.redact(f"the TLS handshake was refused ({reason}); check the client certificate, key "
                            "and CA bundle (SEI_CLIENT_CERT, SEI_CLIENT_KEY, SEI_CA_BUNDLE)"),
                method=method, path=path) from e

    def _error(self, resp: httpx.Response, method: str, path: str, cls: type[ApiError], what: str,
               quote_body: bool = True, refused: bool = False) -> ApiError:
        text = self.redact(resp.text)
        message, tracking, transient = what, None, False
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            tracking = body.get("trackingId") or body.get("correlationId")
            tracking = bounded(tracking, 80) if tracking is not None else None
            vendor_message = body.get("message") or body.get("Message") or body.get("error_description")
            code = body.get("code")
            if vendor_message or code:
                message = f"{what}: {bounded(code, 80) + ': ' if code else ''}{bounded(vendor_message or '')}".rstrip(": ")
            t = body.get("transient")
            transient = t is True or (isinstance(t, str) and t.strip().lower() == "true")
        return cls(self.redact(message), method=method, path=path, status=resp.status_code,
                   tracking_id=tracking, body_excerpt=text[:BODY_EXCERPT_LIMIT] if quote_body else "",
                   transient=transient, refused=refused)


def ambiguous_answer(resp: httpx.Response, method: str, path: str, what: str, redact: Redactor) -> AmbiguousWriteError:
    """A 2xx to a write that cannot be read: the server acted, so the outcome is in doubt."""
    return AmbiguousWriteError(f"HTTP {resp.status_code} but {what}; the write may have been applied, so its "
                               "outcome is in doubt", method=method, path=path, status=resp.status_code,
                               body_excerpt=redact(resp.text)[:BODY_EXCERPT_LIMIT])


def _json_object(resp: httpx.Response) -> dict:
    try:
        body = json.loads(resp.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _tracking_suffix(resp: httpx.Response) -> str:
    """trackingId / correlationId of an answer, for the debug log (SEI asks clients to log every one)."""
    tid = resp.headers.get("x-tracking-id") or resp.headers.get("trackingid")
    if tid is None and resp.headers.get("content-type", "").startswith("application/json") and len(resp.content) < 65536:
        try:
            body = json.loads(resp.content)
        except ValueError:
            body = None
        if isinstance(body, dict):
            tid = body.get("trackingId") or body.get("correlationId")
    return f" trackingId {bounded(tid, 80)}" if tid else ""


class _TooLarge(Exception):
    """The answer exceeded MAX_RESPONSE_BYTES."""


class _DeadlineExceeded(Exception):
    """The answer trickled in past the request's overall deadline."""
