"""Live state → manifests, for adopting what already exists (`reconciler import`).

Server-owned fields are left out, fields at their API defaults are omitted, Custodial/Contribution/
Distribution sleeves are left out (the manifest then leaves them alone), and sleeves carry their
accountId only where (sleeveType, model) would not tell them apart. A plan right after an import
shows no changes.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.fields import (
    ASSIGNED,
    COUNTED_SLEEVE_TYPES,
    INSTRUCTION_FIELDS,
    REGISTRATION_DEFAULTS,
    SLEEVE_DEFAULTS,
    TARGET_BALANCE_TYPES,
    sleeve_model_id,
)

__all__ = ["registration_manifest", "slug", "tradebatch_manifest"]

API_VERSION = "reconciler/v1"
_REG_ORDER = ("isActive", "isDoNotTrade", "contributionAllocationMethod", "distributionAllocationMethod",
              "corporateActionAllocationMethod", "autoRebalFrequency", "autoRebalMonth", "autoRebalDay",
              "sleeveStrategyId", "sleeveStrategyAggId", "mandate", "tolerancePercent", "custodialBilling",
              "sleeveBilling", "excludedAssets", "includedAssets")
_SLEEVE_ORDER = ("sleeveType", "modelAggId", "targetAllocation", "contributionAllocation", "distributionAllocation",
                 "corporateActionAllocation", "managementStyleId", "subAdvisorId", "toleranceLower", "toleranceUpper",
                 "targetBalanceType", "doNotTrade", "minimumCash", "replenishMinCash", "minimumInvestmentAmount")
_BILLING_IDS = ("billFeeScheduleId", "billMasterPayoutScheduleId")


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:200] or "imported"


def _number(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _is_default(value: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        return any(_is_default(value, d) for d in default)
    if isinstance(value, bool) or isinstance(default, bool) or value is None or default is None:
        return value is default or (type(value) is type(default) and value == default)
    return value == default  # numbers by value: 0.0 is the default 0


def registration_manifest(reg: dict, name: str | None = None) -> dict:
    spec: dict[str, Any] = {"registrationId": reg["registrationId"]}
    for f in _REG_ORDER:
        if f not in reg:
            continue
        v = reg[f]
        if f in REGISTRATION_DEFAULTS and _is_default(v, REGISTRATION_DEFAULTS[f]):
            continue
        if f in ("autoRebalMonth", "autoRebalDay") and reg.get("autoRebalFrequency") in (None, "None"):
            continue  # meaningless without a schedule
        if f in ("custodialBilling", "sleeveBilling"):
            ids = {k: v.get(k) for k in _BILLING_IDS if isinstance(v, dict) and v.get(k) is not None}
            if ids:
                spec[f] = ids
            continue
        if v is not None:
            spec[f] = _number(v)
    assigned = {"contributionAllocation": reg.get("contributionAllocationMethod") == ASSIGNED,
                "distributionAllocation": reg.get("distributionAllocationMethod") == ASSIGNED}
    managed = [s for s in reg.get("accountSleeves") or [] if s.get("sleeveType") in COUNTED_SLEEVE_TYPES]
    keys = [(s.get("sleeveType"), sleeve_model_id(s)) for s in managed]
    sleeves = []
    for s, key in zip(managed, keys):
        out: dict[str, Any] = {}
        if keys.count(key) > 1:
            out["accountId"] = s["accountId"]  # (type, model) alone would be ambiguous
        for f in _SLEEVE_ORDER:
            v = s.get(f)
            if f == "modelAggId":
                v = sleeve_model_id(s)
            if f in ("contributionAllocation", "distributionAllocation") and assigned[f]:
                out[f] = _number(v or 0)  # declared in full, so validate can check the sums
                continue
            if f == "targetBalanceType" and TARGET_BALANCE_TYPES.get(v, v) == "Percent":
                continue
            if f in SLEEVE_DEFAULTS and _is_default(v, SLEEVE_DEFAULTS[f]):
                continue
            if v is not None:
                out[f] = _number(v)
        sleeves.append(out)
    spec["accountSleeves"] = sleeves
    return {"apiVersion": API_VERSION, "kind": "SleeveRegistration",
            "metadata": {"name": name or f"registration-{reg['registrationId']}"}, "spec": spec}


def tradebatch_manifest(batch_id: str, rows: list[dict]) -> dict:
    """One TradeBatch from SEI's rows: fields every instruction shares become batch defaults."""
    tickets: dict[int, dict] = {}
    for row in rows:
        tid = int(row["tradeTicketId"])
        if tid not in tickets:  # a ticket has a row per filled order; its instruction fields repeat
            fields = {f: row[f] for f in INSTRUCTION_FIELDS if f != "batchId" and row.get(f) is not None}
            fields["side"] = str(fields.get("side", "")).title()
            tickets[tid] = {k: _number(v) for k, v in fields.items()}
    instructions = [tickets[t] for t in sorted(tickets)]
    shared = {}
    if len(instructions) > 1:
        for f in INSTRUCTION_FIELDS:
            if f in ("batchId", "tradeTicketId"):
                continue
            values = {repr(i.get(f, "<absent>")) for i in instructions}
            if len(values) == 1 and f in instructions[0]:
                shared[f] = instructions[0][f]
    spec: dict[str, Any] = {"batchId": batch_id, **shared}
    spec["instructions"] = [{"tradeTicketId": i["tradeTicketId"],
                             **{k: v for k, v in i.items() if k not in shared and k != "tradeTicketId"}}
                            for i in instructions]
    return {"apiVersion": API_VERSION, "kind": "TradeBatch", "metadata": {"name": slug(batch_id)}, "spec": spec}
