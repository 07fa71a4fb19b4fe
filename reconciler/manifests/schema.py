"""JSON Schema validation of manifest documents: the only module that imports jsonschema.

Validators are compiled once per process. Schemas refer to each other by relative file name
(`common.schema.json#/$defs/...`) so that editors resolve them beside the manifests; here every
schema is pre-registered under that name, and any other reference fails instead of being fetched.
Errors come back as Diagnostics with the file and line of the offending key, and with messages
that say what to do, e.g. "quote it" when YAML turned an identifier into a number.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any

import jsonschema
import referencing
import referencing.exceptions

from reconciler.errors import Diagnostic
from reconciler.escaping import visible

if TYPE_CHECKING:  # schema sits below manifests/ in the layering; it only needs the type
    from reconciler.yamldoc import Document

__all__ = ["KIND_SCHEMAS", "load_schema", "validate_document", "validate_instance"]

KIND_SCHEMAS = {
    "SleeveRegistration": "sleeve-registration.schema.json",
    "SleeveTemplate": "sleeve-template.schema.json",
    "TradeBatch": "trade-batch.schema.json",
    "Policy": "policy.schema.json",
}

_UNEXPECTED = re.compile(r"'([^']+)'")


def _read_only(validator, value, instance, schema):
    if value:
        yield jsonschema.ValidationError("read-only", validator="readOnly")


@functools.cache
def load_schema(name: str) -> dict:
    return json.loads(resources.files("reconciler.schemas").joinpath(name).read_text("utf-8"))


@functools.cache
def _registry() -> referencing.Registry:
    def refuse(uri: str):
        raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class

    names = [p.name for p in resources.files("reconciler.schemas").iterdir() if p.name.endswith(".json")]
    return referencing.Registry(retrieve=refuse).with_resources(  # type: ignore[call-arg]  # an attrs class
        (n, referencing.Resource.from_contents(load_schema(n))) for n in names
    )


# Checking 10,000 manifests, jsonschema spent most of its time not on keywords but on `descend`
# building a validator (and a reference resolver) for every property of every document. Our schemas
# have their $refs inlined (below), so a subschema's keywords can be judged by jsonschema's own keyword
# functions called with the validator at hand. `properties` and `items` do that first for each
# child, and call `descend` only when a child may be invalid, so every reported error still comes
# from jsonschema's descend, with its paths. Keywords that need a resolver or an evolved validator
# ($ref, $dynamicRef, unevaluated*) are never judged this way.
_JUDGED_DIRECTLY = frozenset(
    {
        "type",
        "enum",
        "const",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "format",
        "required",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "dependentRequired",
        "properties",
        "additionalProperties",
        "items",
        "readOnly",
    }
)
# A scalar's verdict under a subschema depends on nothing else, and the same values recur across an
# estate ("Normal sleeve", "Buy", a ticker, a label): each (subschema, type, value) found valid is
# remembered. Subschemas live as long as their cached validators, so their ids stay theirs.
_VALID_SCALARS: set[tuple] = set()
_VALID_SCALARS_LIMIT = 200_000
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_KEYWORDS = jsonschema.Draft202012Validator.VALIDATORS


def _surely_valid(validator, instance: Any, schema: Any) -> bool:
    """True when jsonschema's keyword functions find nothing wrong with `instance`; False when they
    do, or when a keyword must be left to descend."""
    if schema is True:
        return True
    if not isinstance(schema, dict):
        return False
    scalar = instance.__class__ in _SCALAR_TYPES
    if scalar and (id(schema), instance.__class__, instance) in _VALID_SCALARS:
        return True
    for keyword, value in schema.items():
        check = validator.VALIDATORS.get(keyword)
        if check is None:
            continue
        if keyword not in _JUDGED_DIRECTLY:
            return False
        for _ in check(validator, value, instance, schema) or ():
            return False
    if scalar and len(_VALID_SCALARS) < _VALID_SCALARS_LIMIT:
        _VALID_SCALARS.add((id(schema), instance.__class__, instance))
    return True


def _properties(validator, properties, instance, schema):
    """Draft 2020-12 `properties`, descending only into children that may be invalid."""
    if not validator.is_type(instance, "object"):
        return
    for name, subschema in properties.items():
        if name in instance and not _surely_valid(validator, instance[name], subschema):
            yield from validator.descend(instance[name], subschema, path=name, schema_path=name)


def _items(validator, items, instance, schema):
    """Draft 2020-12 `items` (no prefixItems in our schemas, else jsonschema's own), likewise."""
    if "prefixItems" in schema or items is False or not validator.is_type(instance, "array"):
        yield from _KEYWORDS["items"](validator, items, instance, schema)
        return
    for index, item in enumerate(instance):
        if not _surely_valid(validator, item, items):
            yield from validator.descend(item, items, path=index)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"readOnly": _read_only, "properties": _properties, "items": _items}
)


@functools.cache
def _validator(name: str):
    # Validate against a copy with every $ref inlined: resolving references is ~80% of
    # jsonschema's time per document, and 10,000 manifests must validate in seconds. The
    # registry stays as a guard: a reference the inliner could not see still never fetches.
    return _Validator(_inline(load_schema(name), name), registry=_registry())


def _inline(node: Any, base: str) -> Any:
    """The schema with local and sibling-file $refs replaced by what they point at (no cycles here)."""
    if isinstance(node, list):
        return [_inline(v, base) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _inline(v, base) for k, v in node.items()}
    ref = node.pop("$ref", None)
    if ref is None:
        return node
    file, _, pointer = ref.partition("#")
    target: Any = load_schema(file or base)
    for part in filter(None, pointer.split("/")):
        target = target[part]
    merged = dict(_inline(target, file or base))
    for k, v in node.items():
        if k == "properties":
            merged["properties"] = {**merged.get("properties", {}), **v}
        elif k == "required":
            merged["required"] = [*merged.get("required", []), *v]
        else:
            merged[k] = v
    if merged.pop("unevaluatedProperties", True) is False:
        merged["additionalProperties"] = False  # every property is now local, so this is equivalent
    return merged


def validate_instance(schema_name: str, instance: Any) -> list[str]:
    """Plain messages for non-manifest documents (plan files, reports) validated in tests and on load."""
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in _validator(schema_name).iter_errors(instance)
    ]


# Sleeves repeat across an estate (thousands of accounts on a few model mixes), so each distinct
# sleeve is validated once per process; the rest of a registration document is validated as usual.
_SLEEVES = ("spec", "accountSleeves")
_SLEEVE_CACHE_LIMIT = 50_000
_sleeve_cache: dict[str, list[jsonschema.ValidationError]] = {}


@functools.cache
def _split_validators(name: str):
    """(validator for the document without its sleeves, validator for one sleeve)."""
    schema = _inline(load_schema(name), name)
    sleeves = schema["properties"]["spec"]["properties"]["accountSleeves"]
    item = sleeves.pop("items")
    return _Validator(schema, registry=_registry()), _Validator(item, registry=_registry())


def validate_document(doc: Document, kind: str) -> list[Diagnostic]:
    """Every schema error in one document, as Diagnostics pointing at the offending key."""
    out: list[Diagnostic] = []
    name = KIND_SCHEMAS[kind]
    if kind not in ("SleeveRegistration", "SleeveTemplate"):  # no sleeves to validate one by one
        for error in _iter_leaf_errors(_validator(name).iter_errors(doc.data)):
            out.extend(_explain(doc, error, tuple(error.absolute_path)))
        return out
    shell, per_sleeve = _split_validators(name)
    for error in _iter_leaf_errors(shell.iter_errors(doc.data)):
        out.extend(_explain(doc, error, tuple(error.absolute_path)))
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    sleeves = spec.get("accountSleeves") if isinstance(spec, dict) else None
    if isinstance(sleeves, list):
        for i, sleeve in enumerate(sleeves):
            key = repr(sleeve)  # repr keeps 20 / 20.0 / "20" and dates / strings apart
            errors = _sleeve_cache.get(key)
            if errors is None:
                errors = list(_iter_leaf_errors(per_sleeve.iter_errors(sleeve)))
                if len(_sleeve_cache) >= _SLEEVE_CACHE_LIMIT:
                    _sleeve_cache.clear()
                _sleeve_cache[key] = errors
            for error in errors:
                out.extend(_explain(doc, error, _SLEEVES + (i,) + tuple(error.absolute_path)))
    return out


def _iter_leaf_errors(errors) -> Iterator[jsonschema.ValidationError]:
    for e in errors:
        if e.context:  # anyOf/oneOf: the branches say more than the summary
            yield from _iter_leaf_errors(e.context)
        else:
            yield e


def _unknown_hint(name: str, schema: Any) -> str:
    """Did you mean a field of this level (a typo), or does it belong one level down (under spec)?"""
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    close = difflib.get_close_matches(name, list(props), n=1, cutoff=0.8)
    if close:
        return f"did you mean '{close[0]}'?"
    for parent, sub in props.items():
        if isinstance(sub, dict) and name in (sub.get("properties") or {}):
            return f"'{name}' belongs under {parent}:"
    return "check the spelling against the schema in schemas/"


def _explain(doc: Document, e: jsonschema.ValidationError, path: tuple) -> list[Diagnostic]:
    field = str(path[-1]) if path else "document"
    v = e.validator
    if v in ("additionalProperties", "unevaluatedProperties"):
        names = _UNEXPECTED.findall(e.message.split("(", 1)[-1]) if "(" in e.message else []
        return [doc.diagnostic(path + (n,), f"unknown field '{n}'", _unknown_hint(n, e.schema)) for n in names]
    if v == "readOnly":
        if field == "batchSize":
            return [
                doc.diagnostic(
                    path, "batchSize is derived from the number of instructions", "remove it; reconciler computes it"
                )
            ]
        return [doc.diagnostic(path, f"'{field}' is owned by the server", "remove it from the manifest")]
    if v == "required":
        missing = _UNEXPECTED.findall(e.message)[:1] or ["?"]
        return [doc.diagnostic(path, f"missing required field '{missing[0]}'", f"add {missing[0]}")]
    if v == "type":
        tag, raw = doc.scalar(path)
        wanted = e.validator_value
        wants_text = wanted == "string" or (isinstance(wanted, list) and "string" in wanted)
        if wants_text and tag in ("int", "float", "bool", "timestamp", "null"):
            kind = {"int": "a number", "float": "a number", "bool": "a boolean", "timestamp": "a date", "null": "null"}[
                tag
            ]
            return [doc.diagnostic(path, f"{field}: '{raw}' is read by YAML as {kind}", f'quote it: {field}: "{raw}"')]
        return [
            doc.diagnostic(path, f"{field}: expected {_types(wanted)}, got {_show(e.instance)}", "fix the value's type")
        ]
    if v in ("enum", "const"):
        choices = e.validator_value if v == "enum" else [e.validator_value]
        tag, raw = doc.scalar(path)
        if tag == "bool" and any(isinstance(c, str) for c in choices):
            return [
                doc.diagnostic(
                    path,
                    f"{field}: '{raw}' is read by YAML as a boolean",
                    f"quote it, and use one of: {', '.join(map(str, choices))}",
                )
            ]
        return [
            doc.diagnostic(
                path, f"{field}: {_show(e.instance)} is not allowed", f"use one of: {', '.join(map(str, choices))}"
            )
        ]
    if v == "pattern" and field == "cusip":
        return [
            doc.diagnostic(
                path, f"cusip: {_show(e.instance)} is not 9 letters or digits", "a CUSIP is 9 characters; quote it"
            )
        ]
    if v == "pattern" and field == "name":
        return [
            doc.diagnostic(
                path, f"name: {_show(e.instance)} is not a valid name", "use lower-case letters, digits, '-', '.', '_'"
            )
        ]
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return [doc.diagnostic(path, f"{field}: {visible(e.message, 200)}", "use a value in range")]
    if v == "maxLength" and isinstance(e.instance, str):
        return [
            doc.diagnostic(
                path,
                f"{field}: {len(e.instance):,} characters, over the limit of {e.validator_value}",
                f"shorten it to at most {e.validator_value} characters",
            )
        ]
    if v == "minLength" and isinstance(e.instance, str):
        return [
            doc.diagnostic(
                path,
                f"{field}: must not be empty"
                if e.validator_value == 1
                else f"{field}: {len(e.instance)} characters, under the minimum of {e.validator_value}",
                "fill it in",
            )
        ]
    if v in ("maxLength", "minLength", "minItems"):
        return [doc.diagnostic(path, f"{field}: {visible(e.message, 200)}", "shorten or fill it as the schema says")]
    return [doc.diagnostic(path, f"{field}: {visible(e.message, 200)}", "see the schema in schemas/")]


def _types(wanted: Any) -> str:
    return " or ".join(wanted) if isinstance(wanted, list) else str(wanted)


def _show(value: Any) -> str:
    text = visible(json.dumps(value, default=str, ensure_ascii=False))
    return text if len(text) <= 60 else text[:57] + "..."
