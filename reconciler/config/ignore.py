"""Ignore rules: known drift to leave alone, with a reason and an expiry (`ignore:` in reconciler.yaml).

A rule hides differences in plans and drift reports while it is active; hidden differences are
counted and listed apart, and once a rule expires it stops hiding and reports say so. A rule whose
field pattern can never match a declared field is refused, since it would silently hide nothing.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ConfigError
from reconciler.fields import INSTRUCTION_FIELDS, REGISTRATION_FIELDS, SLEEVE_FIELDS

__all__ = ["IgnoreRule", "glob_match", "ignore_rule"]


@dataclass(frozen=True)
class IgnoreRule:
    """Known drift to leave alone: an address glob, a field-path glob, why, and until when."""

    address: str
    field: str
    reason: str
    expires: dt.date | None = None

    def active(self, today: dt.date) -> bool:
        return self.expires is None or today <= self.expires

    def matches(self, address: str, path: str) -> bool:
        return glob_match(address, self.address) and glob_match(path, self.field)


def glob_match(text: str, pattern: str) -> bool:
    """`*` and `?` are wildcards; brackets are literal, so `accountSleeves[*].targetAllocation` works."""
    return fnmatch.fnmatchcase(text, pattern.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]"))


def ignore_rule(where: str, raw: Any) -> IgnoreRule:
    """One `ignore:` entry of reconciler.yaml; `where` names it in errors ("reconciler.yaml: ignore[0]")."""
    if not isinstance(raw, dict) or not raw.get("reason") or not (raw.get("address") or raw.get("field")):
        raise ConfigError(
            f"{where} needs address and/or field patterns and a reason "
            f"(e.g. {{address: 'SleeveRegistration/*', field: 'isDoNotTrade', reason: '...', expires: 2026-12-31}})"
        )
    expires = raw.get("expires")
    if expires is not None and not isinstance(expires, dt.date):
        try:
            expires = dt.date.fromisoformat(str(expires))
        except ValueError as e:
            raise ConfigError(f"{where}.expires {expires!r} is not a date (YYYY-MM-DD)") from e
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    field_pattern = str(raw.get("field") or "*")
    unknown = _unknown_field(field_pattern)
    if unknown:
        raise ConfigError(
            f"{where}.field {field_pattern!r}: {unknown}, so the rule would hide nothing "
            f"(fields: {', '.join(REGISTRATION_FIELDS[:4])}, …, accountSleeves[*].targetAllocation, "
            "or an instruction field such as target)"
        )
    return IgnoreRule(str(raw.get("address") or "*"), field_pattern, str(raw["reason"]), expires)


def _unknown_field(pattern: str) -> str:
    """Why a field pattern can never match a declared field, or '' if it can."""
    head, _, rest = pattern.partition(".")
    base = head.split("[", 1)[0]
    top = (*REGISTRATION_FIELDS, "accountSleeves", *INSTRUCTION_FIELDS)
    if not any(fnmatch.fnmatchcase(name, base) for name in top):
        return f"no registration or instruction field is called {base!r}"
    if rest and fnmatch.fnmatchcase("accountSleeves", base):
        leaf = rest.split(".", 1)[0].split("[", 1)[0]
        if not any(fnmatch.fnmatchcase(name, leaf) for name in (*SLEEVE_FIELDS, "id")):
            return f"no sleeve field is called {leaf!r}"
    return ""
