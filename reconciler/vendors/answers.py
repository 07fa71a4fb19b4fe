"""Checks that a vendor answer has the shape the client needs, so a wrong one is an ApiError naming
the call, never a TypeError deep inside plan or apply. One small reader per kind of answer."""

from __future__ import annotations

from typing import Any

from reconciler.errors import ApiError

__all__ = ["expect_int", "expect_object", "expect_objects"]


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
