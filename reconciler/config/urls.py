"""Base URLs fit to use and fit to show: https (or loopback http), never credentials in them.

httpx would send a URL's `user:password@` as Basic auth, and every error or report that names an
endpoint would print it; so userinfo is refused where a URL is configured, and masked wherever one
is shown (a database URL included).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from reconciler.errors import ConfigError

__all__ = ["endpoint_label", "is_loopback", "mask_url", "require_safe_url"]


def endpoint_label(url: str) -> str:
    """scheme://host[:port]/path of a base URL, never its userinfo."""
    p = urlsplit(url)
    host = p.netloc.rpartition("@")[2]
    return f"{p.scheme}://{host}{p.path.rstrip('/')}" if p.scheme else url


def mask_url(url: str) -> str:
    """A URL fit to show: any userinfo (user:password@) replaced by ****."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="****@" + parts.netloc.rpartition("@")[2]).geturl()


def require_safe_url(url: str, what: str) -> str:
    """https anywhere; plain http only to loopback (the sandbox, tests), never across a network.
    Credentials never ride in a URL (httpx would send them): userinfo is refused, and masked."""
    if not url:
        raise ConfigError(f"{what} is not set (set it in the environment, or use --sandbox)")
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ConfigError(
            f"{what}={mask_url(url)!r}: credentials in the URL are not allowed; give the host only and "
            "the credentials in their own variables (e.g. ORION_TOKEN, SEI_TOKEN)"
        )
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return url.rstrip("/")
    raise ConfigError(f"{what}={mask_url(url)!r}: use https:// (plain http:// is allowed only for a loopback address)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
