"""Business rules of API.md and SPEC.md §1 that a JSON Schema cannot say.

Pure functions over plain vendor-shaped dicts, so the same checks serve `validate` (on what the
manifest declares) and `plan` (on the merged payload, where live values fill the gaps). Each yields
(path, message, hint) with `path` relative to the object checked; callers turn paths into file:line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from reconciler.fields import (
    ASSIGNED,
    COUNTED_SLEEVE_TYPES,
    NUMERIC_TOLERANCE,
    SINGLETON_SLEEVE_TYPES,
    balance_type,
    normalise_method,
    sleeve_model_id,
)

__all__ = ["cusip_check_digit", "iter_registration_problems", "sleeve_key"]

Problem = tuple[tuple, str, str]


def sleeve_key(sleeve: dict) -> tuple:
    """How a declared sleeve finds its live twin: by accountId when given, else (sleeveType, model)."""
    if sleeve.get("accountId"):
        return ("accountId", sleeve["accountId"])
    return ("type", sleeve.get("sleeveType"), sleeve_model_id(sleeve))


def iter_registration_problems(fields: dict[str, Any], sleeves: list[dict], *, complete: bool) -> Iterator[Problem]:
    """Sleeve rules over one registration.

    `complete` is True when `sleeves` is the whole live-merged set (plan); False when it is what a
    manifest declares (validate), where a sum is checked only if every term is declared.
    Paths: ("accountSleeves",) for whole-list problems, ("accountSleeves", i, field) for one sleeve.
    """
    counted = [(i, s) for i, s in enumerate(sleeves) if s.get("sleeveType") in COUNTED_SLEEVE_TYPES]
    # the sums to 100 hold for Percent sleeves only [docs]: a registration sleeved in Dollars is not summed
    dollars = [i for i, s in counted if balance_type(s) == "Dollars"]
    if dollars and len(dollars) != len(counted):
        yield (
            ("accountSleeves", dollars[0], "targetBalanceType"),
            "sleeves mix targetBalanceType Percent and Dollars; the sums-to-100 rule cannot apply",
            "give every Normal and Unmanaged sleeve the same targetBalanceType",
        )
    sums = [("targetAllocation", "targetAllocation sums over Normal and Unmanaged sleeves (targetBalanceType Percent)")]
    for method_field, alloc in (
        ("contributionAllocationMethod", "contributionAllocation"),
        ("distributionAllocationMethod", "distributionAllocation"),
    ):
        if normalise_method(fields.get(method_field)) == ASSIGNED:
            sums.append(
                (
                    alloc,
                    f"with {method_field}: {fields.get(method_field)}, {alloc} sums over Normal and Unmanaged sleeves",
                )
            )
    for alloc, what in sums:
        if not counted or dollars:
            continue
        values = [s.get(alloc) for _, s in counted]
        if not complete and any(v is None for v in values):
            continue
        total = sum(float(v or 0) for v in values)
        if abs(total - 100.0) > NUMERIC_TOLERANCE:
            yield (
                ("accountSleeves",),
                f"{what} to {total:g}, not 100",
                f"adjust the sleeves' {alloc} so they add up to 100",
            )

    first_of_type: dict[str, int] = {}
    first_key: dict[tuple, int] = {}
    for i, s in enumerate(sleeves):
        stype = s.get("sleeveType")
        if stype in SINGLETON_SLEEVE_TYPES:
            if stype in first_of_type:
                yield (
                    (("accountSleeves", i, "sleeveType")),
                    f"a second '{stype}' (first is sleeve #{first_of_type[stype] + 1})",
                    f"a registration has at most one {stype}",
                )
            else:
                first_of_type[stype] = i
        if stype == "Normal sleeve":
            agg = s.get("modelAggId")
            model = s.get("model", {}).get("id") if isinstance(s.get("model"), dict) else None
            if agg is None and model is None:
                yield (
                    ("accountSleeves", i, "sleeveType"),
                    "a Normal sleeve must name a model",
                    "set modelAggId, or model.id",
                )
            elif agg is not None and model is not None and agg != model:
                yield (
                    ("accountSleeves", i, "modelAggId"),
                    f"modelAggId {agg} and model.id {model} differ",
                    "give one of them, or make them equal",
                )
        target = s.get("targetAllocation")
        if isinstance(target, (int, float)) and target > 100 and balance_type(s) == "Percent":
            yield (
                ("accountSleeves", i, "targetAllocation"),
                f"targetAllocation {target:g} is over 100 for a targetBalanceType Percent sleeve",
                "give a percentage, or set targetBalanceType: Dollars",
            )
        lower, upper = s.get("toleranceLower"), s.get("toleranceUpper")
        if lower is not None and upper is not None and lower > upper:
            yield (
                ("accountSleeves", i, "toleranceLower"),
                f"toleranceLower {lower:g} is above toleranceUpper {upper:g}",
                "make toleranceLower <= toleranceUpper",
            )
        if not complete and stype not in SINGLETON_SLEEVE_TYPES:
            key = sleeve_key(s)
            if key in first_key:
                yield (
                    ("accountSleeves", i),
                    f"this sleeve matches the same live sleeve as sleeve #{first_key[key] + 1}",
                    "give each sleeve its accountId, or make (sleeveType, model) unique",
                )
            else:
                first_key[key] = i


_CUSIP_VALUES = {
    **{str(d): d for d in range(10)},
    **{chr(ord("A") + i): 10 + i for i in range(26)},
    "*": 36,
    "@": 37,
    "#": 38,
}


def cusip_check_digit(first8: str) -> int | None:
    """The CUSIP check digit of eight characters (modulus 10, double-add-double), or None if invalid."""
    total = 0
    for i, ch in enumerate(first8.upper()):
        v = _CUSIP_VALUES.get(ch)
        if v is None:
            return None
        if i % 2 == 1:
            v *= 2
        total += v // 10 + v % 10
    return (10 - total % 10) % 10
