"""TLS for each vendor: whom to trust, the client certificate SEI demands, and telling a refused handshake
from a lost answer.

- Trust: a vendor's CA bundle when one is given (ORION_CA_BUNDLE, SEI_CA_BUNDLE, or caBundle in
  reconciler.yaml: a firm's TLS-inspecting proxy, a test CA); otherwise the system's store (OpenSSL's
  defaults, which honour SSL_CERT_FILE and SSL_CERT_DIR) plus certifi's.
- SEI's two-way TLS: the client certificate and key from SEI_CLIENT_CERT / SEI_CLIENT_KEY, loaded into an
  ssl.SSLContext (httpx 0.28 deprecates the string forms of cert=/verify=). Real SEI refuses a call
  without one, so it is required for any host but loopback.
- Under TLS 1.3 a refused client certificate arrives after the request was written, often as a bare
  disconnect; `probe_refusal` asks a fresh connection whether the server refuses our handshake.
Every message names the variables of the vendor it is about, never the other's.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi

from reconciler.config.urls import is_loopback
from reconciler.errors import ConfigError

__all__ = ["VendorTls", "probe_refusal", "vendor_tls"]


@dataclass(frozen=True)
class VendorTls:
    """One vendor's TLS: the context httpx verifies with, and the variables a person would fix."""

    vendor: str  # "Orion", "SEI", "GitHub"
    variables: str  # e.g. "ORION_CA_BUNDLE" or "SEI_CLIENT_CERT, SEI_CLIENT_KEY, SEI_CA_BUNDLE"
    context: ssl.SSLContext | bool  # True for plain http (loopback only)
    host: str = ""
    port: int = 443
    two_way: bool = False  # the vendor may demand a client certificate (SEI): a disconnect may be a refusal

    def hint(self, reason: str) -> str:
        what = "the client certificate, key and CA bundle" if self.two_way else "the CA bundle"
        return (
            f"the TLS handshake with {self.vendor} was refused ({reason}); check {what} "
            f"({self.variables}), or SSL_CERT_FILE for the system's trusted CAs"
        )

    def probe(self) -> str | None:
        if not self.two_way or not isinstance(self.context, ssl.SSLContext):
            return None
        return probe_refusal(self.host, self.port, self.context)


def vendor_tls(
    vendor: str,
    base_url: str,
    *,
    ca_bundle: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
    require_client_cert: bool = False,
    variables: str = "",
) -> VendorTls:
    """The TLS set-up for `base_url`: None needed for loopback http."""
    parts = urlsplit(base_url)
    if parts.scheme != "https":
        return VendorTls(vendor, variables, True)
    try:
        if ca_bundle:
            ctx = ssl.create_default_context(cafile=ca_bundle)
        else:
            ctx = ssl.create_default_context()  # the system's store; SSL_CERT_FILE/SSL_CERT_DIR honoured
            ctx.load_verify_locations(cafile=certifi.where())
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(
            f"cannot load the {vendor} CA bundle {ca_bundle!r} ({variables}): "
            f"{getattr(e, 'strerror', None) or getattr(e, 'reason', None) or type(e).__name__}"
        ) from e
    host = parts.hostname or ""
    if client_cert or client_key:
        try:
            ctx.load_cert_chain(client_cert or "", client_key or None)
        except (OSError, ssl.SSLError) as e:
            # never quote the key file's contents; name the variables instead
            raise ConfigError(
                f"cannot load the {vendor} client certificate/key ({variables}): "
                f"{getattr(e, 'strerror', None) or type(e).__name__}"
            ) from e
    elif require_client_cert and not is_loopback(host):
        raise ConfigError(f"{vendor} requires two-way TLS: set its client certificate and key ({variables}; PEM files)")
    return VendorTls(vendor, variables, ctx, host, parts.port or 443, require_client_cert or bool(client_cert))


def probe_refusal(host: str, port: int, context: ssl.SSLContext, timeout: float = 2.0) -> str | None:
    """Why the server refuses a TLS session with `context`, or None if it accepts one.

    After the handshake an accepting server waits for a request; a refusing one (client certificate
    missing or untrusted) sends an alert or closes at once.
    """
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
