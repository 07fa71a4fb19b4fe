"""What the emulated vendors accept, written from API.md on its own, never borrowed from the client.

The client has its own field catalogue (reconciler/fields.py) and rules (reconciler/rules.py). If the
sandbox imported them, a mistake there would be mirrored here and every integration test would pass
over it. So the emulator states the contract again, the way a vendor's server would, and where both
sides must agree (CUSIP check digits, the sums to 100) they are held to the same *test vectors*, kept
as data in tests/vectors/, not to shared code. import-linter keeps the sandbox off the client's modules.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BATCH_LIMIT",
    "INSTRUCTION_FIELDS",
    "PAGE_LIMIT",
    "READ_CHUNK",
    "REGISTRATION_FIELDS",
    "SLEEVE_FIELDS",
    "cusip_is_valid",
    "registration_problems",
    "sleeve_model",
    "ticket_problems",
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
BATCH_LIMIT = 100  # items per batch POST; more is a 400 [assumed in API.md]
READ_CHUNK = 500  # ids per ListWithAccountSleeves call [assumed]
PAGE_LIMIT = 1000  # the largest `limit` of the ticket list [assumed]

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


def shape_problems(reg: dict) -> list[str]:
    """What no rule can judge: sleeve lists that are not lists of objects (Orion answers 400, never 500)."""
    out = []
    for name in ("accountSleeves",):
        value = reg.get(name)
        if value is not None and (not isinstance(value, list) or not all(isinstance(s, dict) for s in value)):
            out.append(f"{name} must be a list of objects")
    return out


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


def ticket_problems(data: Any) -> list[dict]:
    """SEI's field errors for one posted instruction (API.md §2 "Write"), in its `errors` shape."""
    if not isinstance(data, dict):
        return [{"field": "data", "location": "body", "reason": "must be one instruction object"}]
    problems = []
    for f in ("batchId", "batchSize", "tradeTicketId", "side", "ticker", "cusip", "target"):
        if data.get(f) in (None, ""):
            problems.append({"field": f, "location": "body", "reason": "required"})
    unknown = set(data) - set(INSTRUCTION_FIELDS) - {"batchSize"}
    problems += [{"field": f, "location": "body", "reason": "unknown field"} for f in sorted(unknown)]
    if str(data.get("side", "")).title() not in ("Buy", "Sell"):
        problems.append({"field": "side", "location": "body", "reason": "must be Buy or Sell"})
    if not cusip_is_valid(data.get("cusip")):
        problems.append({"field": "cusip", "location": "body", "reason": "not a valid CUSIP"})
    if len(str(data.get("comments") or "")) > 255:
        problems.append({"field": "comments", "location": "body", "reason": "longer than 255 characters"})
    for f in ("tradeTicketId", "masterOrderId"):
        v = data.get(f)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 < v <= 99999999):
            problems.append({"field": f, "location": "body", "reason": "an integer of up to 8 digits"})
    return problems
