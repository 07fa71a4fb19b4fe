"""Secrets never shown: every known credential masked in its plain, URL-encoded and base64 forms, and
anything shaped like a token masked even when its value is not known to us (a form-encoded token answer,
an HTML error page echoing request headers). httpx's own header repr masks only Authorization; the
AppKey header, Basic credentials and minted tokens need this too."""

from __future__ import annotations

import base64
import re
import urllib.parse

__all__ = ["Redactor"]

_TOKEN_SHAPES = re.compile(
    r"(?i)((?:access_token|refresh_token|id_token|token|password|passwd|client_secret|app_?secret|api_?key|appkey)"
    r"[\"']?\s*[=:]\s*[\"']?)([^\s\"'&,;<>]{4,})"
    r"|((?:authorization|appkey)[\"']?\s*[:=]\s*[\"']?(?:(?:session|bearer|basic)\s+)?)([^\s\"'&,;<>]{4,})"
    r"|(\b(?:Session|Bearer|Basic)\s+)([A-Za-z0-9._~+/=-]{8,})"
)


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
        forms = {
            value,
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote_plus(value),
            base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode(),
        }
        forms |= {f.rstrip("=") for f in forms}
        with_new = [f for f in forms if len(f) >= 4 and f not in self._secrets]
        if with_new:
            self._secrets = sorted(self._secrets + with_new, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, "****")
        return _TOKEN_SHAPES.sub(
            lambda m: next(g for g in (m.group(1), m.group(3), m.group(5)) if g is not None) + "****", text
        )
