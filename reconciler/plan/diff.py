"""Desired vs live, declared fields only: the only module that imports deepdiff.

Both sides are first *projected*: only the fields the manifest declares, normalised (20 == 20.0,
1 == "Percent", "BUY" == "Buy"), sleeves keyed by identity (accountId when declared, else
(sleeveType, model)) so list order never counts. Server-owned and undeclared fields are simply not
in the projection. A plain `==` on the projections decides whether anything differs; deepdiff runs
only then, to say exactly what (it costs 6–25 ms a registration, the `==` microseconds).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from deepdiff import DeepDiff

from reconciler.config.ignore import IgnoreRule
from reconciler.errors import Diagnostic
from reconciler.fields import COUNTED_SLEEVE_TYPES, normalise_value, sleeve_model_id
from reconciler.model import DesiredInstruction, DesiredRegistration, FieldChange, IgnoredChange

__all__ = [
    "InstructionDiff",
    "RegistrationDiff",
    "deepdiff_calls",
    "diff_instruction",
    "diff_registration",
    "pair_sleeves",
    "sleeve_label",
]

_calls = 0
_calls_lock = threading.Lock()


def deepdiff_calls() -> int:
    """How many times deepdiff has run in this process (tests and the benchmark count it)."""
    return _calls


def _deepdiff(before: Any, after: Any) -> DeepDiff:
    global _calls
    with _calls_lock:
        _calls += 1
    # threshold_to_diff_deeper=0: deepdiff 8 otherwise reports a dict sharing few keys (a registration
    # whose every sleeve changed model) as one whole-value change, which has no field path to show
    return DeepDiff(before, after, view="tree", ignore_order=False, threshold_to_diff_deeper=0)


def sleeve_label(sleeve: dict, by_account_id: bool = False) -> str:
    """How a sleeve is named in plans: `Normal sleeve, model 36`, or `accountId 30617` when pinned."""
    if by_account_id and sleeve.get("accountId"):
        return f"accountId {sleeve['accountId']}"
    model = sleeve_model_id(sleeve)
    return f"{sleeve.get('sleeveType')}, model {model}" if model is not None else str(sleeve.get("sleeveType"))


@dataclass(frozen=True)
class RegistrationDiff:
    """What differs, structured for the payload and flattened for display."""

    fields: tuple[FieldChange, ...] = ()
    changed_fields: tuple[str, ...] = ()  # registration-level fields to lay over live
    changed_sleeves: dict[Any, tuple[str, ...]] = field(default_factory=dict)  # live accountId → fields
    new_sleeves: tuple[dict, ...] = ()  # declared sleeves with no live twin
    removed: tuple[dict, ...] = ()  # live Normal/Unmanaged sleeves no longer declared
    ignored: tuple[IgnoredChange, ...] = ()
    declared: dict[Any, dict] = field(default_factory=dict)  # live accountId → the declared sleeve fields
    labels: dict[str, Any] = field(default_factory=dict)  # sleeve label in paths → live accountId
    problems: tuple[Diagnostic, ...] = ()  # declared accountIds that are not live sleeves

    @property
    def changed(self) -> bool:
        return bool(self.changed_fields or self.changed_sleeves or self.new_sleeves or self.removed)


def _project(live_value: Any, desired_value: Any, name: str) -> Any:
    """The live value seen through what is declared: nested objects keep only declared keys."""
    if isinstance(desired_value, dict) and isinstance(live_value, dict):
        return {k: _project(live_value.get(k), v, k) for k, v in desired_value.items()}
    return normalise_value(name, live_value)


def pair_sleeves(
    desired: DesiredRegistration, live: dict
) -> tuple[list[tuple[Any, dict | None]], list[dict], list[Diagnostic]]:
    """Pair each declared sleeve with its live twin: [(DesiredSleeve, live sleeve or None)] in declared
    order, the unmatched live sleeves, and problems. Pinned sleeves (accountId declared) are matched
    first, so a (sleeveType, model) match never takes them."""
    live_sleeves = live.get("accountSleeves") or []
    taken: set[int] = set()
    pairs: list = [None] * len(desired.sleeves)
    problems: list[Diagnostic] = []
    pinned = [(n, ds) for n, ds in enumerate(desired.sleeves) if ds.account_id]
    if pinned:
        by_id = {s.get("accountId"): s for s in live_sleeves}
        for n, ds in pinned:
            ls = by_id.get(ds.account_id)
            if ls is None:
                problems.append(
                    ds.source.problem(
                        f"accountId {ds.account_id} is not a sleeve of registration {desired.registration_id}",
                        "leave accountId out to match by sleeve type and model",
                    )
                )
                continue
            taken.add(id(ls))
            pairs[n] = (ds, ls)
    by_key: dict[tuple, list[dict]] = {}
    for s in live_sleeves:
        if id(s) not in taken:
            by_key.setdefault((s.get("sleeveType"), sleeve_model_id(s)), []).append(s)
    for n, ds in enumerate(desired.sleeves):
        if pairs[n] is not None or ds.account_id:
            continue
        candidates = by_key.get((ds.fields.get("sleeveType"), sleeve_model_id(ds.fields)))
        twin = candidates.pop(0) if candidates else None
        if twin is not None:
            taken.add(id(twin))
        pairs[n] = (ds, twin)
    unmatched = [s for s in live_sleeves if id(s) not in taken]
    return [p for p in pairs if p is not None], unmatched, problems


def match_sleeves(
    desired: DesiredRegistration, live: dict
) -> tuple[list[tuple[str, dict, dict | None]], list[dict], list[Diagnostic]]:
    """pair_sleeves with each pair named as plans show it: [(label, declared fields, live sleeve or None)]."""
    pairs, unmatched, problems = pair_sleeves(desired, live)
    return _labelled(pairs), unmatched, problems


def _labelled(pairs: list[tuple[Any, dict | None]]) -> list[tuple[str, dict, dict | None]]:
    return [(sleeve_label(ds.fields, bool(ds.account_id)), ds.comparable, ls) for ds, ls in pairs]


def _same(name: str, want: Any, have: Any) -> bool:
    """The cheap comparison: equal in value after normalisation, without building anything.

    Plain `==` already treats 20 and 20.0 as equal; it must not treat True and 1 as equal, and it
    cannot know that 1 is "Percent" or BUY is Buy, so those fall through to normalise_value.
    Containers are compared through the same projection the full diff uses.
    """
    if isinstance(want, (dict, list)) or isinstance(have, (dict, list)):
        return _project(have, want, name) == _project(want, want, name)
    if want == have and (type(want) is bool) == (type(have) is bool):
        return True
    return normalise_value(name, want) == normalise_value(name, have)


_SCALARS = frozenset((str, int, float, type(None)))


def _declared_same(declared: dict, live: dict) -> bool:
    get = live.get
    for k, v in declared.items():
        h = get(k)
        if h is v or (h == v and type(h) is type(v) and type(v) in _SCALARS):
            continue  # the usual case, settled without a call (one object is the same value under any rule)
        if not _same(k, v, h):
            return False
    return True


def diff_registration(
    desired: DesiredRegistration, live: dict, ignore: tuple[IgnoreRule, ...] = (), today: dt.date | None = None
) -> RegistrationDiff:
    sleeve_pairs, unmatched, problems = pair_sleeves(desired, live)
    removed = [s for s in unmatched if s.get("sleeveType") in COUNTED_SLEEVE_TYPES]
    if (
        not removed
        and _declared_same(desired.fields, live)
        and all(ls is not None and _declared_same(ds.comparable, ls) for ds, ls in sleeve_pairs)
    ):
        return RegistrationDiff(problems=tuple(problems))  # the common case: nothing built, no deepdiff

    pairs = _labelled(sleeve_pairs)  # labels only here: the common case above never builds them

    want = {
        "fields": {k: _project(v, v, k) for k, v in desired.fields.items()},
        "sleeves": {label: {k: _project(v, v, k) for k, v in d.items()} for label, d, _ in pairs},
    }
    have = {
        "fields": {k: _project(live.get(k), v, k) for k, v in desired.fields.items()},
        "sleeves": {
            label: {k: _project(ls.get(k), v, k) for k, v in d.items()} for label, d, ls in pairs if ls is not None
        },
    }
    for s in removed:
        have["sleeves"][f"{sleeve_label(s)} (accountId {s.get('accountId')})"] = {"accountId": s.get("accountId")}
    if want == have:
        return RegistrationDiff(problems=tuple(problems))
    _drop_identical(want, have)

    # a live sleeve's accountId as Orion sent it (an int; None only from a malformed answer)
    live_ids: dict[str, Any] = {label: ls.get("accountId") for label, _, ls in pairs if ls is not None}
    removed_by_label = {f"{sleeve_label(s)} (accountId {s.get('accountId')})": s for s in removed}
    declared_by_label = {label: d for label, d, _ in pairs}
    changes: list[FieldChange] = []
    ignored: list[IgnoredChange] = []
    reg_fields: set[str] = set()
    sleeve_fields: dict[Any, set[str]] = {}
    new: list[dict] = []
    gone: list[dict] = []
    for level in _iter_levels(_deepdiff(have, want)):
        path = level.path(output_format="list")
        scope, rest = path[0], path[1:]
        if scope == "fields":
            display = _display_path(rest)
            change = FieldChange(display, _plain(level.t1), _plain(level.t2))
            if _ignored(desired.address, display, ignore, today, ignored, change):
                continue
            reg_fields.add(rest[0])
            changes.append(change)
        elif len(rest) == 1:  # a whole sleeve added or removed
            label = rest[0]
            display = f"accountSleeves[{label}]"
            if label in declared_by_label:
                change = FieldChange(display, None, dict(declared_by_label[label]))
                if not _ignored(desired.address, display, ignore, today, ignored, change):
                    new.append(declared_by_label[label])
                    changes.append(change)
            else:
                s = removed_by_label[label]
                summary = {k: s.get(k) for k in ("accountId", "sleeveType", "modelAggId", "targetAllocation")}
                change = FieldChange(display, summary, None)
                if not _ignored(desired.address, display, ignore, today, ignored, change):
                    gone.append(s)
                    changes.append(change)
        else:
            label, name = rest[0], rest[1]
            display = f"accountSleeves[{label}].{_display_path(rest[1:])}"
            change = FieldChange(display, _plain(level.t1), _plain(level.t2))
            if _ignored(desired.address, display, ignore, today, ignored, change):
                continue
            sleeve_fields.setdefault(live_ids[label], set()).add(name)
            changes.append(change)
    return RegistrationDiff(
        fields=tuple(sorted(changes, key=lambda c: (c.path.startswith("accountSleeves"), c.path))),
        changed_fields=tuple(sorted(reg_fields)),
        changed_sleeves={aid: tuple(sorted(f)) for aid, f in sleeve_fields.items()},
        new_sleeves=tuple(new),
        removed=tuple(gone),
        ignored=tuple(ignored),
        declared={live_ids[label]: declared_by_label[label] for label in live_ids},
        problems=tuple(problems),
        labels={**live_ids, **{label: s.get("accountId") for label, s in removed_by_label.items()}},
    )


@dataclass(frozen=True)
class InstructionDiff:
    exists: bool
    fields: tuple[FieldChange, ...] = ()
    ignored: tuple[IgnoredChange, ...] = ()

    @property
    def conflict(self) -> bool:
        return self.exists and bool(self.fields)


def diff_instruction(
    desired: DesiredInstruction, rows: list[dict], ignore: tuple[IgnoreRule, ...] = (), today: dt.date | None = None
) -> InstructionDiff:
    """A ticket's declared fields vs what SEI holds; `quantity` is per order and never compared."""
    if not rows:
        return InstructionDiff(exists=False)
    row = rows[0]  # every order row carries the instruction's fields as submitted
    if _declared_same(desired.fields, row):
        return InstructionDiff(exists=True)
    want = {k: normalise_value(k, v) for k, v in desired.fields.items()}
    have = {k: normalise_value(k, row.get(k)) for k in desired.fields}
    if want == have:
        return InstructionDiff(exists=True)
    changes: list[FieldChange] = []
    ignored: list[IgnoredChange] = []
    for level in _iter_levels(_deepdiff(have, want)):
        display = _display_path(level.path(output_format="list"))
        change = FieldChange(display, _plain(level.t1), _plain(level.t2))
        if not _ignored(desired.address, display, ignore, today, ignored, change):
            changes.append(change)
    return InstructionDiff(exists=True, fields=tuple(sorted(changes, key=lambda c: c.path)), ignored=tuple(ignored))


def _drop_identical(want: dict, have: dict) -> None:
    """Leave deepdiff only the fields and sleeves that differ: one drifted target in a registration of
    six sleeves cost 2.2 ms of deepdiff, most of it walking what is equal. Identical means the same
    repr (same types as well as values: True and 1, 20 and 20.0 stay for deepdiff to report), so the
    report on what is left is the report on the whole."""
    for scope in ("fields", "sleeves"):
        for key in [k for k, v in want[scope].items() if k in have[scope] and repr(v) == repr(have[scope][k])]:
            del want[scope][key], have[scope][key]


def _iter_levels(diff: DeepDiff) -> Iterator[Any]:
    for report in diff.values():
        yield from report


def _display_path(parts: list) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _plain(value: Any) -> Any:
    """deepdiff's 'not present' marker → None; floats that are whole numbers → int, for display."""
    if type(value).__name__ == "NotPresent":
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _ignored(
    address: str,
    path: str,
    rules: tuple[IgnoreRule, ...],
    today: dt.date | None,
    out: list[IgnoredChange],
    change: FieldChange,
) -> bool:
    today = today or dt.date.today()
    for rule in rules:
        if rule.active(today) and rule.matches(address, path):
            out.append(IgnoredChange(address, path, rule.reason))
            return True
    return False
