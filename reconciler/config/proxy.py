"""An explicit HTTP(S) proxy for the vendors, for firms whose egress goes through one.

The clients never read proxy settings from the environment on their own (`trust_env=False`: an
unexpected variable must not reroute money). This module reads them once, on purpose: HTTPS_PROXY
(or https_proxy) and NO_PROXY (or no_proxy) from the environment, else `proxy:` in reconciler.yaml,
either a URL or `{url: …, noProxy: [hosts]}`. The URL may carry credentials (user:password@): it is a
Secret, shown only masked. A TLS-inspecting proxy presents its own CA: name it with ORION_CA_BUNDLE /
SEI_CA_BUNDLE (or SSL_CERT_FILE), as for any private CA.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from reconciler.config.urls import mask_url
from reconciler.errors import ConfigError
from reconciler.secret import Secret

__all__ = ["ProxySettings", "proxy_settings"]


@dataclass(frozen=True)
class ProxySettings:
    url: Secret
    no_proxy: tuple[str, ...] = ()

    @property
    def shown(self) -> str:
        return mask_url(self.url.reveal())

    def secrets(self) -> list[str]:
        """What must never be shown: the password, and user:password (what Basic auth encodes)."""
        parts = urlsplit(self.url.reveal())
        if not parts.password:
            return []
        return [unquote(parts.password), f"{unquote(parts.username or '')}:{unquote(parts.password)}"]

    def for_url(self, base_url: str) -> Secret | None:
        """The proxy for requests to `base_url`, or None where NO_PROXY exempts its host (a name, a
        domain suffix such as `.firm.internal` or `firm.internal`, a host:port, or `*` for every host)."""
        parts = urlsplit(base_url)
        host = (parts.hostname or "").lower()
        for entry in self.no_proxy:
            entry = entry.lower().strip()
            if not entry:
                continue
            name, _, port = entry.partition(":")
            if port and str(parts.port or "") != port:
                continue
            if name == "*" or host == name.lstrip(".") or host.endswith("." + name.lstrip(".")):
                return None
        return self.url


def proxy_settings(env: Mapping[str, str], file_value: Any, where: str) -> ProxySettings | None:
    """The proxy from the environment (wins) or reconciler.yaml's `proxy:` (`where` names the file)."""
    url = env.get("HTTPS_PROXY") or env.get("https_proxy")
    no_proxy = env.get("NO_PROXY") or env.get("no_proxy") or ""
    hosts = tuple(h.strip() for h in no_proxy.split(",") if h.strip())
    source = "HTTPS_PROXY"
    if not url and file_value:
        source = f"{where}: proxy"
        if isinstance(file_value, str):
            url = file_value
        elif isinstance(file_value, dict) and isinstance(file_value.get("url"), str):
            url = file_value["url"]
            listed = file_value.get("noProxy") or []
            if not isinstance(listed, list) or not all(isinstance(h, str) for h in listed):
                raise ConfigError(f"{where}: proxy.noProxy must be a list of host names")
            hosts = hosts or tuple(listed)
        else:
            raise ConfigError(f"{where}: proxy must be a URL, or {{url: URL, noProxy: [hosts]}}")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{source}={mask_url(url)!r} is not an http:// or https:// proxy URL (SOCKS proxies are not supported)"
        )
    return ProxySettings(Secret(url), hosts)
