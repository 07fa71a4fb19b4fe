"""What a vendor's answer means: its shape checked (a wrong one is an ApiError naming the call, never a
TypeError deep inside plan or apply), a refusal turned into an error that quotes it safely, a 2xx to a
write that cannot be read called in doubt, and the trackingId SEI asks clients to log."""

from __future__ import annotations

import json
from typing import Any

import httpx

from reconciler.errors import BODY_EXCERPT_LIMIT, AmbiguousWriteError, ApiError
from reconciler.escaping import bounded
from reconciler.vendors.redaction import Redactor

__all__ = [
    "ambiguous_answer",
    "error_from_answer",
    "expect_int",
    "expect_object",
    "expect_objects",
    "tracking_id",
    "tracking_suffix",
]


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def expect_object(value: Any, method: str, path: str, what: str = "answer") -> dict:
    if not isinstance(value, dict):
        raise ApiError(f"the {what} is {_kind(value)}, not the JSON object this call returns", method=method, path=path)
    return value


def expect_objects(value: Any, method: str, path: str, what: str = "answer", *, allow_null: bool = False) -> list[dict]:
    if value is None and allow_null:
        return []
    if not isinstance(value, list):
        raise ApiError(f"the {what} is {_kind(value)}, not the JSON array this call returns", method=method, path=path)
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ApiError(f"item {i} of the {what} is {_kind(item)}, not an object", method=method, path=path)
    return value


def expect_int(value: Any, method: str, path: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().lstrip("-").isdigit():
        raise ApiError(f"{what} is {_kind(value)} {str(value)[:40]!r}, not an integer", method=method, path=path)
    return int(value)


def error_from_answer(
    resp: httpx.Response,
    method: str,
    path: str,
    cls: type[ApiError],
    what: str,
    redact: Redactor,
    *,
    quote_body: bool = True,
    refused: bool = False,
) -> ApiError:
    """The error for a vendor's refusal: its code and message quoted (bounded, redacted), its trackingId."""
    text = redact(resp.text)
    message, transient = what, False
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        vendor_message = body.get("message") or body.get("Message") or body.get("error_description")
        code = body.get("code")
        if vendor_message or code:
            message = f"{what}: {bounded(code, 80) + ': ' if code else ''}{bounded(vendor_message or '')}".rstrip(": ")
        t = body.get("transient")
        transient = t is True or (isinstance(t, str) and t.strip().lower() == "true")
    return cls(
        redact(message),
        method=method,
        path=path,
        status=resp.status_code,
        tracking_id=tracking_id(resp),
        body_excerpt=text[:BODY_EXCERPT_LIMIT] if quote_body else "",
        transient=transient,
        refused=refused,
    )


def ambiguous_answer(resp: httpx.Response, method: str, path: str, what: str, redact: Redactor) -> AmbiguousWriteError:
    """A 2xx to a write that cannot be read: the server acted, so the outcome is in doubt."""
    return AmbiguousWriteError(
        f"HTTP {resp.status_code} but {what}; the write may have been applied, so its outcome is in doubt",
        method=method,
        path=path,
        status=resp.status_code,
        body_excerpt=redact(resp.text)[:BODY_EXCERPT_LIMIT],
    )


def _json_object(resp: httpx.Response) -> dict:
    try:
        body = json.loads(resp.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def tracking_id(resp: httpx.Response) -> str | None:
    """The vendor's trackingId (SEI) or correlationId, bounded: what its support asks for."""
    body = _json_object(resp) if len(resp.content) < 65536 else {}
    tid = body.get("trackingId") or body.get("correlationId")
    return bounded(tid, 80) if tid is not None else None


def tracking_suffix(resp: httpx.Response) -> str:
    """trackingId / correlationId of an answer, for the debug log (SEI asks clients to log every one)."""
    tid = resp.headers.get("x-tracking-id") or resp.headers.get("trackingid")
    if tid is None and resp.headers.get("content-type", "").startswith("application/json"):
        tid = tracking_id(resp)
    return f" trackingId {bounded(tid, 80)}" if tid else ""
