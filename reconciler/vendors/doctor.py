"""`reconciler doctor`: the first command a firm runs against a real tenant. One line per check.

Checks, in the order a connection fails: configuration; each credential present (never printed);
each endpoint reachable (DNS, TCP, TLS); SEI's client certificate and key readable, matching, and
days to expiry (a warning under 30: SEI issues them for two years); each login; one read-only call
to each API. Every failure says what to do. The only module that imports cryptography (to read a
certificate's expiry: the ssl module can load a certificate but not tell when it ends).
"""

from __future__ import annotations

import datetime as dt
import enum
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509

from reconciler.config import Settings
from reconciler.errors import ReconcilerError
from reconciler.escaping import bounded
from reconciler.vendors.tls import VendorTls

__all__ = ["CERT_WARN_DAYS", "Check", "CheckStatus", "run_checks"]

CERT_WARN_DAYS = 30  # SEI certificates last two years; a month is time enough to have one reissued
NET_TIMEOUT = 5.0


class CheckStatus(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: CheckStatus
    detail: str
    hint: str = ""


def _credentials(settings: Settings) -> list[Check]:
    o, s = settings.orion, settings.sei
    out = []
    if o.token or (o.username and o.password):
        how = "ORION_TOKEN" if o.token else "ORION_USERNAME + ORION_PASSWORD (minted)"
        out.append(Check("Orion credentials", CheckStatus.OK, f"{how} set"))
    else:
        out.append(
            Check(
                "Orion credentials",
                CheckStatus.FAIL,
                "none set",
                "set ORION_TOKEN, or ORION_USERNAME and ORION_PASSWORD",
            )
        )
    if not s.app_key:
        out.append(
            Check(
                "SEI credentials",
                CheckStatus.FAIL,
                "SEI_APP_KEY is not set",
                "set SEI_APP_KEY (every SEI call sends it)",
            )
        )
    elif s.token or (s.app_secret and s.username and s.password):
        how = "SEI_TOKEN" if s.token else "SEI_APP_SECRET + SEI_USERNAME + SEI_PASSWORD (minted)"
        out.append(Check("SEI credentials", CheckStatus.OK, f"SEI_APP_KEY and {how} set"))
    else:
        out.append(
            Check(
                "SEI credentials",
                CheckStatus.FAIL,
                "no token and no way to mint one",
                "set SEI_TOKEN, or SEI_APP_SECRET, SEI_USERNAME and SEI_PASSWORD",
            )
        )
    return out


def _reach(name: str, url: str, variable: str, tls: VendorTls) -> Check:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError as e:
        return Check(
            f"{name} endpoint",
            CheckStatus.FAIL,
            f"cannot resolve {host} ({e.strerror or e})",
            f"check {variable} and the runner's DNS",
        )
    try:
        raw = socket.create_connection((host, port), timeout=NET_TIMEOUT)
    except OSError as e:
        return Check(
            f"{name} endpoint",
            CheckStatus.FAIL,
            f"no TCP connection to {host}:{port} ({e.strerror or e})",
            f"check {variable}, the firewall, and (for SEI) that this runner's IP address is whitelisted",
        )
    with raw:
        if not isinstance(tls.context, ssl.SSLContext):
            return Check(f"{name} endpoint", CheckStatus.OK, f"{host}:{port} reachable (plain http: loopback only)")
        try:
            with tls.context.wrap_socket(raw, server_hostname=host) as session:
                return Check(f"{name} endpoint", CheckStatus.OK, f"{host}:{port} reachable, {session.version()}")
        except (ssl.SSLError, OSError) as e:
            return Check(
                f"{name} endpoint",
                CheckStatus.FAIL,
                f"TLS with {host}:{port} failed ({bounded(e, 160)})",
                f"check {variable} and {tls.variables}, or SSL_CERT_FILE for the system's trusted CAs",
            )


def _certificate(settings: Settings, now: dt.datetime) -> list[Check]:
    s = settings.sei
    if urlsplit(s.base_url).scheme != "https":
        return [Check("SEI client certificate", CheckStatus.OK, "not needed: plain http on loopback (sandbox, tests)")]
    if not s.client_cert or not s.client_key:
        return [
            Check(
                "SEI client certificate",
                CheckStatus.FAIL,
                "SEI_CLIENT_CERT and SEI_CLIENT_KEY are not both set",
                "SEI requires two-way TLS: give the PEM files SEI issued for your service account",
            )
        ]
    try:
        with open(s.client_cert, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError) as e:
        return [
            Check(
                "SEI client certificate",
                CheckStatus.FAIL,
                f"SEI_CLIENT_CERT cannot be read as a PEM certificate "
                f"({getattr(e, 'strerror', None) or type(e).__name__})",
                "check the path in SEI_CLIENT_CERT",
            )
        ]
    try:
        ssl.create_default_context().load_cert_chain(s.client_cert, s.client_key)
    except ssl.SSLError as e:
        return [
            Check(
                "SEI client certificate",
                CheckStatus.FAIL,
                f"SEI_CLIENT_KEY does not match SEI_CLIENT_CERT ({e.reason})",
                "give the private key that belongs to this certificate in SEI_CLIENT_KEY",
            )
        ]
    except OSError as e:
        return [
            Check(
                "SEI client certificate",
                CheckStatus.FAIL,
                f"SEI_CLIENT_KEY cannot be read ({e.strerror})",
                "check the path in SEI_CLIENT_KEY",
            )
        ]
    days = (cert.not_valid_after_utc - now).days
    subject = cert.subject.rfc4514_string()
    if days < 0:
        return [
            Check(
                "SEI client certificate",
                CheckStatus.FAIL,
                f"{subject} expired {-days} day(s) ago",
                "ask SEI for a new certificate",
            )
        ]
    if days < CERT_WARN_DAYS:
        return [
            Check(
                "SEI client certificate",
                CheckStatus.WARN,
                f"{subject} expires in {days} day(s) ({cert.not_valid_after_utc:%Y-%m-%d})",
                "ask SEI to reissue it now: renewal takes time",
            )
        ]
    return [Check("SEI client certificate", CheckStatus.OK, f"{subject}, key matches, {days} days left")]


def run_checks(settings: Settings, *, sandbox: bool = False, now: dt.datetime | None = None) -> list[Check]:
    """Every check that can run; later checks are skipped (not failed) when an earlier one makes them moot."""
    from reconciler.vendors import orion_tls, sei_tls
    from reconciler.vendors.session import open_session

    now = now or dt.datetime.now(dt.UTC)
    checks = [
        Check(
            "configuration",
            CheckStatus.OK,
            f"environment {settings.environment or 'custom'}" + (", the in-process sandbox" if sandbox else ""),
        )
    ]
    if sandbox:
        with open_session(settings, sandbox=True) as session:
            return checks + _online(session.settings, session)
    checks += _credentials(settings)
    for name, url, variable in (
        ("Orion", settings.orion.base_url, "ORION_BASE_URL"),
        ("SEI", settings.sei.base_url, "SEI_BASE_URL"),
    ):
        if not url:
            checks.append(
                Check(
                    f"{name} endpoint",
                    CheckStatus.FAIL,
                    f"{variable} is not set",
                    f"set {variable}, or `environment:` in reconciler.yaml",
                )
            )
    checks += _certificate(settings, now)
    if any(c.status is CheckStatus.FAIL for c in checks):
        return checks
    contexts = []
    for name, tls_of in (("Orion", orion_tls), ("SEI", sei_tls)):
        try:
            contexts.append(tls_of(settings))
        except ReconcilerError as e:
            return checks + [
                Check(f"{name} endpoint", CheckStatus.FAIL, bounded(e), "fix the certificate settings named above")
            ]
    for (name, url, variable), tls in zip(
        (("Orion", settings.orion.base_url, "ORION_BASE_URL"), ("SEI", settings.sei.base_url, "SEI_BASE_URL")), contexts
    ):
        checks.append(_reach(name, url, variable, tls))
    if any(c.status is CheckStatus.FAIL for c in checks):
        return checks
    with open_session(settings) as session:
        return checks + _online(settings, session)


def _online(settings: Settings, session) -> list[Check]:
    """Logins, then one read-only call to each API."""
    out = []
    orion, sei = session.vendors.orion, session.vendors.sei
    for name, client, given in (("Orion login", orion, "ORION_TOKEN"), ("SEI login", sei, "SEI_TOKEN")):
        try:
            client.auth.token()
            minted = client.settings.token is None
            out.append(
                Check(
                    name,
                    CheckStatus.OK,
                    "a token was minted" if minted else f"{given} given (not checked yet: the read below uses it)",
                )
            )
        except ReconcilerError as e:
            out.append(Check(name, CheckStatus.FAIL, bounded(e, 400), "check the credentials named above"))
    if any(c.status is CheckStatus.FAIL for c in out):
        return out
    end = dt.datetime.now(dt.UTC)
    try:
        batches = orion.list_batches((end - dt.timedelta(hours=1)).isoformat(), end.isoformat())
        out.append(
            Check(
                "Orion read",
                CheckStatus.OK,
                f"BatchProcessing list answered ({len(batches)} batch(es) in the last hour)",
            )
        )
    except ReconcilerError as e:
        out.append(Check("Orion read", CheckStatus.FAIL, bounded(e, 400), _read_hint(e, "ORION_TOKEN", "Orion")))
    try:
        sei.get_ticket(1)
        out.append(Check("SEI read", CheckStatus.OK, "trade tickets answered"))
    except ReconcilerError as e:
        out.append(Check("SEI read", CheckStatus.FAIL, bounded(e, 400), _read_hint(e, "SEI_TOKEN", "SEI")))
    return out


def _read_hint(e: ReconcilerError, variable: str, vendor: str) -> str:
    """What to fix when the first read fails: a refused token (401) is the credentials, not the rights."""
    status = getattr(e, "status", None)
    if status == 401:
        return f"{vendor} refused the credentials: check {variable} (current, and for this environment)"
    if vendor == "Orion":
        return "the credentials are accepted but reads are not: check the account's rights in Orion"
    return "the credentials are accepted but reads are not: check the app's access to Trade Order Management"
