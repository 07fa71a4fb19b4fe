"""The vendor field catalogue: which fields users declare, which the server owns, and how enums normalise.

API.md marks facts as [seed], [docs] or [assumed]. Every [assumed] fact the code depends on lives here,
named, so that a real tenant that behaves otherwise means changing one line, not hunting through modules.
The JSON Schemas in schemas/ list the same fields; tests/test_schemas.py keeps the two in step.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

__all__ = [
    "ALLOCATION_METHODS",
    "ALLOCATION_METHOD_FIELDS",
    "ASSIGNED",
    "BATCH_LIST_SKEW_SECONDS",
    "COUNTED_SLEEVE_TYPES",
    "ENVIRONMENTS",
    "SETTLE_FLOOR_SECONDS",
    "utc_text",
    "INSTRUCTION_FIELDS",
    "NUMERIC_TOLERANCE",
    "ORION_BATCH_LIMIT",
    "ORION_READ_CHUNK",
    "REGISTRATION_DEFAULTS",
    "REGISTRATION_FIELDS",
    "SEI_PAGE_LIMIT",
    "SERVER_OWNED_REGISTRATION_FIELDS",
    "SERVER_OWNED_SLEEVE_FIELDS",
    "SINGLETON_SLEEVE_TYPES",
    "SLEEVE_DEFAULTS",
    "SLEEVE_FIELDS",
    "SLEEVE_TYPES",
    "TARGET_BALANCE_TYPES",
    "balance_type",
    "normalise_method",
    "normalise_value",
    "parse_vendor_time",
    "sleeve_model_id",
]

# Registration-level fields a manifest may declare [docs].
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

# Per-sleeve fields a manifest may declare [docs]. accountId is identity, not a value.
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

SERVER_OWNED_REGISTRATION_FIELDS = (
    "clientId",
    "sweepAssetId",
    "createdBy",
    "createdDate",
    "editedBy",
    "editedDate",
    "rowId",
    "regValue",
    "assets",
    "categoryAllocations",
    "riskScore",
    "aggregateRiskScore",
    "needsUpdate",
    "needsUpdateReason",
    "eclipseFirmId",
    "contributionTotal",
    "distributionTotal",
    "targetTotal",
    "riskScoreTotal",
    "normalGroupedSleeves",
    "custodialAccountNumber",
    "asOfDate",
    "registrationRiskTolerance",
    "isValid",
    "validationMessage",
)

SERVER_OWNED_SLEEVE_FIELDS = (
    "sweepAssetId",
    "createdBy",
    "createdDate",
    "editedBy",
    "editedDate",
    "rowId",
    "currentAllocation",
    "currentValue",
    "regValue",
    "assets",
    "categoryAllocations",
    "sleeveDescription",
    "modelAgg",
    "managementStyle",
    "managementStyleName",
    "subAdvisor",
    "riskScore",
    "createdFromOciProcess",
    "hasSMAModel",
    "registrationId",
)

# The instruction fields SEI stores as submitted [seed]; batchSize is derived, never declared.
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

SLEEVE_TYPES = ("Normal sleeve", "Custodial account", "Contribution sleeve", "Distribution sleeve", "Unmanaged sleeve")
# targetAllocation sums to 100 over these [docs]; so do Assigned contribution/distribution [assumed].
COUNTED_SLEEVE_TYPES = frozenset({"Normal sleeve", "Unmanaged sleeve"})
# At most one of each per registration [assumed].
SINGLETON_SLEEVE_TYPES = ("Custodial account", "Contribution sleeve", "Distribution sleeve")
ASSIGNED = "UseAssigned"  # the canonical spelling; see ALLOCATION_METHODS

# targetBalanceType is Percent (1) or Dollars (2) [docs]; "Amount" was this project's earlier
# assumption for 2 and is still read as Dollars. The sums to 100 hold for Percent only [docs].
TARGET_BALANCE_TYPES = {1: "Percent", 2: "Dollars"}
_BALANCE_SPELLINGS = {"percent": "Percent", "dollars": "Dollars", "amount": "Dollars"}

# The allocation methods arrive as UseAssigned/UseTarget/UseOUB/UseCurrent in the public OpenAPI
# description and as Assigned / Sleeve Current Percent in the vendor's guides [docs]; the other two
# guide spellings are [assumed]. Both normalise to the Use… form before any comparison or rule.
ALLOCATION_METHODS = {
    "useassigned": "UseAssigned",
    "assigned": "UseAssigned",
    "usecurrent": "UseCurrent",
    "sleeve current percent": "UseCurrent",
    "current": "UseCurrent",
    "usetarget": "UseTarget",
    "target": "UseTarget",
    "sleeve target percent": "UseTarget",
    "useoub": "UseOUB",
    "oub": "UseOUB",
}
ALLOCATION_METHOD_FIELDS = (
    "contributionAllocationMethod",
    "distributionAllocationMethod",
    "corporateActionAllocationMethod",
)


def normalise_method(value: Any) -> Any:
    """An allocation method in its canonical Use… spelling (unknown spellings are kept as they are)."""
    if isinstance(value, str):
        return ALLOCATION_METHODS.get(" ".join(value.split()).lower(), value)
    return value


def balance_type(sleeve: dict) -> str:
    """Percent or Dollars; a sleeve that says nothing is Percent (the seed's 1) [docs]."""
    value = sleeve.get("targetBalanceType")
    if value is None:
        return "Percent"
    if isinstance(value, int) and not isinstance(value, bool):
        return TARGET_BALANCE_TYPES.get(value, str(value))
    return _BALANCE_SPELLINGS.get(str(value).strip().lower(), str(value))


# Sums of percentages are compared with this slack so that 33.33 + 33.33 + 33.34 is 100 [assumed].
NUMERIC_TOLERANCE = 0.01

# Values `import` leaves out because they are what Orion holds when nobody set anything [assumed].
REGISTRATION_DEFAULTS = {
    "isDoNotTrade": False,
    "mandate": False,
    "tolerancePercent": None,
    "sleeveStrategyId": None,
    "sleeveStrategyAggId": None,
    "excludedAssets": None,
    "includedAssets": None,
    "autoRebalFrequency": "None",
}
SLEEVE_DEFAULTS = {
    "subAdvisorId": None,
    "managementStyleId": None,
    "corporateActionAllocation": 0,
    "toleranceUpper": 0,
    "toleranceLower": 0,
    "doNotTrade": False,
    "minimumCash": None,
    "replenishMinCash": (False, None),
    "minimumInvestmentAmount": None,
    "contributionAllocation": 0,
    "distributionAllocation": 0,
}

# The vendors' documented hosts by environment [docs]. Orion documents production and test only;
# SEI's Build and Sandbox environments are paired with Orion's test host [assumed].
ENVIRONMENTS = {
    "production": ("https://api.orionadvisor.com/api", "https://mtls.api.seic.com"),
    "test": ("https://testapi.orionadvisor.com/api", "https://test.mtls.api.seic.com"),
    "sandbox": ("https://testapi.orionadvisor.com/api", "https://sandbox.mtls.api.seic.com"),
    "build": ("https://testapi.orionadvisor.com/api", "https://build.mtls.api.seic.com"),
}

ORION_BATCH_LIMIT = 100  # more than 100 items is a 400 [assumed]; the seed recommends 50–100
# The BatchProcessing list is asked for batches created from this long before our POST was
# journaled, so a server clock a little behind ours still lists it [assumed: the filter is inclusive
# and a just-accepted batch is listed at once].
BATCH_LIST_SKEW_SECONDS = 120.0
ORION_READ_CHUNK = 500  # ids per ListWithAccountSleeves call [assumed]
SEI_PAGE_LIMIT = 1000  # largest `limit` SEI accepts [assumed]
# How long after a write whose answer was lost the vendor may still commit it: the settle window's
# floor, by environment [assumed: neither vendor documents how long it may hold a request]. It is a
# property of the vendor, not of the client's time-outs: a user who asks for 2 s time-outs must not
# shrink it (issue 32: a 4 s window let a ticket SEI held for 5 s be POSTed twice). Gateways in front
# of both APIs hold requests for tens of seconds; production gets the most room. `None`: endpoints
# named by URL (a firm's own proxy, a loopback emulator).
SETTLE_FLOOR_SECONDS = {"production": 120.0, "test": 60.0, "sandbox": 60.0, "build": 60.0, None: 30.0}


def normalise_value(field: str, value: Any) -> Any:
    """Bring one vendor value to a canonical form so that spelling never counts as a change.

    Numbers become floats (20 == 20.0), enum codes become names (1 → "Percent"), SEI's upper-case
    sides become title case. Booleans stay booleans even though Python counts them as ints.
    """
    if field == "targetBalanceType" and value is not None:
        return balance_type({"targetBalanceType": value})
    if field in ALLOCATION_METHOD_FIELDS:
        return normalise_method(value)
    if field == "side" and isinstance(value, str):
        return value.strip().title()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        f = float(value)
        return f if math.isfinite(f) else value
    if isinstance(value, dict):
        return {k: normalise_value(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_value(field, v) for v in value]
    return value


def sleeve_model_id(sleeve: dict) -> Any:
    """The model a sleeve holds: `modelAggId`, else `model.id` (API.md allows either)."""
    model_id = sleeve.get("modelAggId")
    if model_id is None and isinstance(sleeve.get("model"), dict):
        model_id = sleeve["model"].get("id")
    return model_id


def parse_vendor_time(value: Any) -> float | None:
    """A vendor timestamp as epoch seconds. Dates without an offset are read as UTC [assumed: API.md
    says SEI's dates carry no time zone; Orion's examples carry one]. None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def utc_text(value: Any) -> str | None:
    """A vendor timestamp shown in UTC, to the second (`2024-04-25T05:44:06Z`), whatever offset the vendor
    gave; None if it cannot be read (show the vendor's own string then). Reports keep the original too."""
    epoch = parse_vendor_time(value)
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
