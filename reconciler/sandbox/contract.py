"""What the emulated vendors accept, written from API.md on its own, never borrowed from the client.

The client has its own field catalogue (reconciler/fields.py) and rules (reconciler/rules.py). If the
sandbox imported them, a mistake there would be mirrored here and every integration test would pass
over it. So the emulator states the contract again, the way a vendor's server would, and where both
sides must agree (CUSIP check digits, the sums to 100) they are held to the same *test vectors*, kept
as data in tests/vectors/, not to shared code. import-linter keeps the sandbox off the client's modules.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Any

__all__ = [
    "INSTRUCTION_FIELDS",
    "REGISTRATION_FIELDS",
    "SLEEVE_FIELDS",
    "cursor_offset",
    "cusip_is_valid",
    "encode_cursor",
    "parse_instant",
    "registration_problems",
    "sleeve_model",
]

# API.md §1 "Registration fields": what a posted registration may change.
REGISTRATION_FIELDS = (
    "isActive",
    "isDoNotTrade",
    "contributionAllocationMethod",
    "distributionAllocationMethod",
    "corporateActionAllocationMethod",
    "autoRebalFrequency",
    "autoRebalMonth",
    "autoRebalDay",
    "sleeveStrategyId",
    "sleeveStrategyAggId",
    "mandate",
    "tolerancePercent",
    "custodialBilling",
    "sleeveBilling",
    "excludedAssets",
    "includedAssets",
)
SLEEVE_FIELDS = (
    "sleeveType",
    "modelAggId",
    "model",
    "managementStyleId",
    "subAdvisorId",
    "targetAllocation",
    "contributionAllocation",
    "distributionAllocation",
    "corporateActionAllocation",
    "toleranceUpper",
    "toleranceLower",
    "targetBalanceType",
    "doNotTrade",
    "minimumCash",
    "replenishMinCash",
    "minimumInvestmentAmount",
)
# API.md §2 "Write": the fields of one instruction (batchSize is checked on its own).
INSTRUCTION_FIELDS = (
    "batchId",
    "tradeTicketId",
    "masterOrderId",
    "strategyCode",
    "side",
    "ticker",
    "cusip",
    "securityName",
    "target",
    "orderGenerationPrice",
    "minimumCash",
    "affectsModel",
    "comments",
)
# The wire limits (100 registrations a batch, 500 ids a bulk read, pages of 1 to 1,000 tickets) and every
# field's type are stated once, in the OpenAPI descriptions the sandbox enforces (openapi.py).

_SUMMED = ("Normal sleeve", "Unmanaged sleeve")  # "all sleeves except Custodial, Contribution and Distribution"
_AT_MOST_ONE = ("Custodial account", "Contribution sleeve", "Distribution sleeve")
_SLACK = 0.01  # 33.33 + 33.33 + 33.34 is 100; the vectors pin where the edge lies


def sleeve_model(sleeve: dict) -> Any:
    """`modelAggId`, or else `model.id`: API.md lets a sleeve name its model either way."""
    if sleeve.get("modelAggId") is not None:
        return sleeve["modelAggId"]
    model = sleeve.get("model")
    return model.get("id") if isinstance(model, dict) else None


def _is_dollars(sleeve: dict) -> bool:
    value = sleeve.get("targetBalanceType")
    return value == 2 or (isinstance(value, str) and value.strip().lower() in ("dollars", "amount"))


def _assigned(method: Any) -> bool:
    """`Assigned` in the guides, `UseAssigned` in the OpenAPI description."""
    return isinstance(method, str) and method.replace(" ", "").lower() in ("assigned", "useassigned")


def registration_problems(reg: dict) -> list[str]:
    """Why Orion would refuse this whole registration (API.md §1 "Business rules"); [] if it would not."""
    sleeves = reg.get("accountSleeves") or []
    out: list[str] = []
    summed = [s for s in sleeves if s.get("sleeveType") in _SUMMED]
    dollars = [s for s in summed if _is_dollars(s)]
    if dollars and len(dollars) < len(summed):
        out.append("sleeves mix Percent and Dollars balance types")
    elif summed and not dollars:
        checks = [("targetAllocation", True)]
        checks += [
            ("contributionAllocation", _assigned(reg.get("contributionAllocationMethod"))),
            ("distributionAllocation", _assigned(reg.get("distributionAllocationMethod"))),
        ]
        for name, applies in checks:
            total = sum(float(s.get(name) or 0) for s in summed)
            if applies and abs(total - 100) > _SLACK:
                out.append(f"{name} of Normal and Unmanaged sleeves adds up to {total:g}, not 100")
    for kind in _AT_MOST_ONE:
        if sum(1 for s in sleeves if s.get("sleeveType") == kind) > 1:
            out.append(f"more than one {kind}")
    for s in sleeves:
        label = f"sleeve {s.get('accountId') or '(new)'}"
        if s.get("sleeveType") == "Normal sleeve":
            agg = s.get("modelAggId")
            model = s.get("model").get("id") if isinstance(s.get("model"), dict) else None
            if agg is None and model is None:
                out.append(f"{label}: a Normal sleeve needs a model")
            elif agg is not None and model is not None and agg != model:
                out.append(f"{label}: modelAggId {agg} and model.id {model} disagree")
        if not _is_dollars(s):
            for name in ("targetAllocation", "contributionAllocation", "distributionAllocation"):
                v = s.get(name)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and not 0 <= v <= 100:
                    out.append(f"{label}: {name} {v:g} is not a percentage")
        low, high = s.get("toleranceLower"), s.get("toleranceUpper")
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
            out.append(f"{label}: toleranceLower {low:g} is above toleranceUpper {high:g}")
    return out


def cusip_is_valid(cusip: Any) -> bool:
    """Nine characters, the ninth the check digit of the first eight (modulus 10, double every second)."""
    if not isinstance(cusip, str) or len(cusip) != 9 or not cusip[8].isdigit():
        return False
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*@#"
    digits = 0
    for position, ch in enumerate(cusip[:8].upper(), start=1):
        value = alphabet.find(ch)
        if value < 0:
            return False
        value = value * 2 if position % 2 == 0 else value
        digits += sum(divmod(value, 10))
    return (10 - digits % 10) % 10 == int(cusip[8])


_CURSOR = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def encode_cursor(offset: int) -> str:
    """SEI's cursors are opaque [docs]; the sandbox's are the row offset, base64url-encoded."""
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def cursor_offset(cursor: Any) -> int | None:
    """The offset a cursor this server issued stands for; None for any other string."""
    if not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor):
        return None
    try:
        text = base64.urlsafe_b64decode(cursor).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not re.fullmatch(r"0|[1-9][0-9]{0,17}", text) or encode_cursor(int(text)) != cursor:
        return None
    return int(text)


def parse_instant(value: Any) -> float | None:
    """An RFC 3339 date-time (the BatchProcessing list's startDate and endDate) as epoch seconds; None if
    it is not one. A leap second (23:59:60) counts as the second before it."""
    m = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if second == 60 and (hour, minute) == (23, 59):
        second = 59
    try:
        when = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError:
        return None
    offset = 0
    if m.group(9):
        hours, minutes = int(m.group(10)), int(m.group(11))
        if hours > 23 or minutes > 59:
            return None
        offset = (hours * 3600 + minutes * 60) * (1 if m.group(9) == "+" else -1)
    return when.timestamp() - offset + float("0" + (m.group(7) or ""))
