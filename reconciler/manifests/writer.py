"""Manifests → YAML text, in the project's own style: block mappings, one flow line per sleeve or
instruction, identifiers always double-quoted so that YAML 1.1 can never retype them."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["QUOTED_FIELDS", "dump_manifests"]

# Strings that are identifiers or free text: quoted even when YAML would read them right unquoted,
# so a reviewer never has to wonder whether 037833100 stayed a string. Enum values (sleeveType,
# allocation methods, autoRebalFrequency) stay plain, as people write them; the dumper still quotes
# any value YAML 1.1 would read as something else (yes, on, 1.0).
QUOTED_FIELDS = frozenset({"batchId", "cusip", "ticker", "strategyCode", "securityName", "comments", "template"})


class _Quoted(str):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Quoted, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v), style='"'))


def _mark(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _mark(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark(v, key) for v in value]
    if isinstance(value, str) and key in QUOTED_FIELDS:
        return _Quoted(value)
    return value


def dump_manifests(documents: list[dict], header: str = "") -> str:
    """Documents as one YAML stream; `header` becomes comment lines at the top."""
    body = yaml.dump_all(
        [_mark(d) for d in documents],
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=None,
        width=4096,
        allow_unicode=True,
        explicit_start=len(documents) > 1,
    )
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + body
