"""The sandbox holds every request to its published OpenAPI descriptions before any vendor logic runs.

A vendor's gateway refuses what its description forbids (a registration id that is not a number, a date
that is not a date, a body of the wrong shape) with its own error body, and such a request never reaches
business logic. The sandbox does the same, from the very files it publishes (schemas/orion.openapi.yaml,
schemas/sei.openapi.yaml): they are the one statement of the wire shapes, which routes need which
credentials, and which parameters are typed how. tests/sandbox/test_openapi_contract.py fuzzes the
running sandbox against the same files, so the emulator and its descriptions cannot drift apart.

This module is the sandbox's one home for pyyaml and jsonschema-rs. It validates with jsonschema-rs, not
the client's jsonschema, for speed: a batch of 100 registrations takes about 1.3 ms to check, against
63 ms with jsonschema, which would make the emulator, not the vendor's pace, the bottleneck of every apply
benchmark. The sandbox shares no code with the client, by design (see contract.py). Rules a schema
cannot state by itself are named formats, checked here with the sandbox's own code: `cusip` (the check
digit), `sei-cursor` (a cursor this server issued), `date-time` (RFC 3339).
"""

from __future__ import annotations

import functools
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema_rs
import yaml

from reconciler.sandbox.contract import cursor_offset, cusip_is_valid, parse_instant

__all__ = ["Checked", "Description", "Operation", "Problem", "description"]

_FORMATS = {
    "cusip": ("not a valid CUSIP", cusip_is_valid),
    "sei-cursor": ("not a cursor this server issued (use paging.next)", lambda v: cursor_offset(v) is not None),
    "date-time": ("not an RFC 3339 date-time, e.g. 2026-12-06T14:00:00Z", lambda v: parse_instant(v) is not None),
}
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class Problem:
    """One way a request breaks the description: where (path, query, header, body), which field, why."""

    location: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field or self.location}: {self.reason}"


@dataclass(frozen=True)
class _Parameter:
    name: str
    where: str  # path or query
    required: bool
    check: Callable[[Any], list[Problem]]
    schema: dict


@dataclass(frozen=True)
class Operation:
    """One method on one path of a description, with what it needs from a request."""

    method: str
    path: str  # the description's template, e.g. /v1/Utility/BatchProcessing/{batchId}
    security: frozenset[str]  # the scheme names any of whose requirement sets admits the caller
    parameters: tuple[_Parameter, ...]
    body_type: str | None  # application/json or application/x-www-form-urlencoded
    body_required: bool
    check_body: Callable[[Any], list[Problem]] | None

    def check(self, path_params: dict[str, Any], query: Iterable[tuple[str, str]], body: bytes) -> Checked:
        """The request's typed parameters and body, and every way it breaks the description."""
        problems: list[Problem] = []
        values: dict[str, Any] = {}
        raw_query: dict[str, list[str]] = {}
        for name, given in query:
            raw_query.setdefault(name, []).append(given)
        for p in self.parameters:
            raws = (
                [str(path_params[p.name])] if p.where == "path" and p.name in path_params else raw_query.get(p.name, [])
            )
            if not raws:
                if p.required:
                    problems.append(Problem(p.where, p.name, "required"))
                continue
            # one value per scalar parameter: `?id=1&id=2` is an array where the description says integer
            value: Any = _typed(raws[0], p.schema) if len(raws) == 1 else [_typed(r, p.schema) for r in raws]
            found = p.check(value)
            problems += [Problem(p.where, p.name, f.reason) for f in found]
            if not found:
                values[p.name] = value
        parsed: Any = None
        if self.body_type is not None:
            parsed, body_problems = self._parse_body(body)
            problems += body_problems
        return Checked(values, parsed, problems)

    def _parse_body(self, body: bytes) -> tuple[Any, list[Problem]]:
        if not body.strip():
            return None, [Problem("body", "", "a request body is required")] if self.body_required else []
        if self.body_type == "application/x-www-form-urlencoded":
            text = body.decode("utf-8", errors="replace")
            parsed: Any = {k: v[0] for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items()}
        else:
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return None, [Problem("body", "", "the body is not JSON")]
        return parsed, self.check_body(parsed) if self.check_body else []


@dataclass(frozen=True)
class Checked:
    params: dict[str, Any]
    body: Any
    problems: list[Problem]


def _typed(raw: str, schema: dict) -> Any:
    """A query or path string as the value its schema's type names; left a string when it is not one,
    so that the schema check says what is wrong with it."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "integer" in types and _INTEGER.fullmatch(raw):
        return int(raw)
    if "boolean" in types and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _field(error: jsonschema_rs.ValidationError) -> str:
    path = ""
    for part in error.instance_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _reason(error: jsonschema_rs.ValidationError) -> str:
    """A short reason: the library's messages repeat the whole offending value, which may be a registration."""
    kind = error.kind
    K = jsonschema_rs.ValidationErrorKind
    if isinstance(kind, K.Type):
        return "must be " + " or ".join(kind.types)
    if isinstance(kind, K.Enum | K.Constant):
        options = kind.options if isinstance(kind, K.Enum) else [kind.expected_value]
        return "must be one of " + ", ".join(json.dumps(o) for o in options)
    if isinstance(kind, K.Format):
        return _FORMATS.get(kind.format, (f"not a valid {kind.format}", None))[0]
    if isinstance(kind, K.Required):
        return f"{kind.property} is required"
    if isinstance(kind, K.AdditionalProperties):
        return "unknown field " + ", ".join(kind.unexpected)
    bounds = {
        K.Minimum: "at least {}",
        K.Maximum: "at most {}",
        K.ExclusiveMinimum: "above {}",
        K.ExclusiveMaximum: "below {}",
        K.MinItems: "at least {} item(s)",
        K.MaxItems: "at most {} item(s)",
        K.MinLength: "at least {} character(s)",
        K.MaxLength: "at most {} character(s)",
    }
    for cls, text in bounds.items():
        if isinstance(kind, cls):
            return text.format(kind.as_dict().get("limit"))
    if isinstance(kind, K.Pattern):
        return f"must match {kind.pattern}"
    return error.message if len(error.message) <= 200 else error.message[:197] + "…"


class Description:
    """One vendor's OpenAPI description, loaded from the packaged schemas/ folder."""

    def __init__(self, name: str):
        self.name = name
        self.document: dict = yaml.safe_load(resources.files("reconciler.schemas").joinpath(name).read_text("utf-8"))
        self._uri = f"urn:reconciler:{name}"
        self._registry = jsonschema_rs.Registry([(self._uri, self.document)], draft=jsonschema_rs.Draft202012)
        self.operations = {(op.method, op.path): op for op in self._read_operations()}

    @functools.cached_property
    def integer_path_params(self) -> frozenset[str]:
        return frozenset(
            p.name
            for op in self.operations.values()
            for p in op.parameters
            if p.where == "path" and p.schema.get("type") == "integer"
        )

    def operation(self, method: str, path: str) -> Operation:
        return self.operations[(method.upper(), path)]

    def methods(self, path: str) -> list[str]:
        return [m for (m, p) in self.operations if p == path]

    def paths(self) -> list[str]:
        return list(dict.fromkeys(p for (_, p) in self.operations))

    def _checker(self, pointer: str) -> Callable[[Any], list[Problem]]:
        validator = jsonschema_rs.Draft202012Validator(
            {"$ref": f"{self._uri}#{urllib.parse.quote(pointer, safe='/~')}"},
            registry=self._registry,
            formats={name: accepts for name, (_, accepts) in _FORMATS.items()},
            validate_formats=True,
        )

        def check(value: Any) -> list[Problem]:
            errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.instance_path)))
            return [Problem("body", _field(e), _reason(e)) for e in errors[:10]]

        return check

    def _resolve(self, node: dict) -> tuple[dict, str | None]:
        ref = node.get("$ref")
        if not ref:
            return node, None
        pointer = ref.removeprefix("#")
        target: Any = self.document
        for part in pointer.strip("/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return target, pointer

    def _read_operations(self) -> Iterable[Operation]:
        default_security = self.document.get("security", [])
        for path, item in self.document["paths"].items():
            for method, op in item.items():
                if method not in ("get", "put", "post", "patch", "delete"):
                    continue
                here = _pointer("paths", path, method)
                params = []
                for i, raw in enumerate(op.get("parameters", [])):
                    param, pointer = self._resolve(raw)
                    pointer = (pointer or f"{here}{_pointer('parameters', str(i))}") + "/schema"
                    params.append(
                        _Parameter(
                            param["name"],
                            param["in"],
                            bool(param.get("required")),
                            self._checker(pointer),
                            param["schema"],
                        )
                    )
                body = op.get("requestBody") or {}
                content = body.get("content", {})
                body_type = next(iter(content), None)
                schema_pointer = f"{here}/requestBody/content/{_pointer(body_type)[1:]}/schema" if body_type else None
                security = op.get("security", default_security)
                yield Operation(
                    method=method.upper(),
                    path=path,
                    security=frozenset(name for requirement in security for name in requirement),
                    parameters=tuple(params),
                    body_type=body_type,
                    body_required=bool(body.get("required")),
                    check_body=self._checker(schema_pointer) if schema_pointer else None,
                )


@functools.cache
def description(name: str) -> Description:
    """The description `name` (orion.openapi.yaml or sei.openapi.yaml), loaded once per process."""
    return Description(name)
