"""Demo live state, shaped like Orion's own example (registration 31547), that differs from manifests/.

A newcomer's first `plan --sandbox` should have something real to show: a changed target, a sleeve
to add, a sleeve to remove, a flag flipped outside Git, trade instructions to send, and resources
that already match despite reordered sleeves and enum codes (`targetBalanceType: 1`).
`make_registration` is also what the benchmark's data generator uses.
"""

from __future__ import annotations

from typing import Any

__all__ = ["demo_state", "make_registration", "make_ticket_rows"]

MODELS = {
    30: "MF Baseline Rebal No Cash",
    34: "MF Baseline Rebalance II",
    36: "Equity Rebalance II",
    41: "Core Fixed Income",
    45: "Small Cap Value",
    52: "Legacy Balanced",
}
STAMP = "2024-04-25T00:44:04.16-05:00"


def _sleeve(
    reg_id: int,
    account_id: int,
    sleeve_type: str,
    target: float = 0,
    *,
    model: int | None = None,
    contribution: float = 0,
    distribution: float = 0,
    style: int | None = None,
    tol: tuple[float, float] = (0, 0),
    reg_value: float = 500000,
) -> dict[str, Any]:
    return {
        "modelAllocations": None,
        "sweepAssetId": 387000 + account_id % 1000,
        "custodialBilling": None,
        "sleeveBilling": None,
        "minimumCash": None,
        "replenishMinCash": False,
        "substitutes": [],
        "hasSMAModel": False,
        "modelAggType": 0,
        "minimumInvestmentAmount": None,
        "createdFromOciProcess": False,
        "accountId": account_id,
        "sleeveDescription": f" {target:.4f} Percent",
        "targetAllocation": target,
        "currentAllocation": target,
        "currentValue": reg_value * target / 100,
        "contributionAllocation": contribution,
        "distributionAllocation": distribution,
        "corporateActionAllocation": 0,
        "toleranceUpper": tol[1],
        "toleranceLower": tol[0],
        "sleeveType": sleeve_type,
        "modelAgg": MODELS.get(model) if model else None,
        "managementStyle": "Managed Account" if sleeve_type == "Custodial account" else None,
        "subAdvisor": None,
        "modelType": None,
        "registrationId": reg_id,
        "subAdvisorId": None,
        "modelAggId": model,
        "managementStyleId": style,
        "createdBy": "orionuser",
        "createdDate": STAMP,
        "editedBy": "orionuser",
        "editedDate": STAMP,
        "targetBalanceType": 1,
        "doNotTrade": False,
        "riskScore": None,
        "regValue": reg_value,
        "isCustomized": False,
        "sleeveStrategyDetailId": None,
        "sleeveStrategyId": None,
        "sleeveStrategy": None,
        "businessLine": None,
        "unitBalanceScale": "3",
        "assets": [],
        "categoryAllocations": [{"category": "Money Market", "value": 0, "percent": None}],
    }


def make_registration(
    reg_id: int,
    normal: list[tuple],
    *,
    first_account: int,
    client_id: int | None = None,
    name: str | None = None,
    unmanaged: float | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A registration with custodial, contribution and distribution sleeves plus `normal` sleeves.

    `normal` rows: (modelAggId, target, contribution, distribution[, managementStyleId[, (tolLower, tolUpper)]]).
    """
    aid = iter(range(first_account, first_account + 100))
    sleeves = [
        _sleeve(reg_id, next(aid), "Custodial account", style=24),
        _sleeve(reg_id, next(aid), "Contribution sleeve"),
        _sleeve(reg_id, next(aid), "Distribution sleeve"),
    ]
    for row in normal:
        model, target, contrib, dist, *rest = row
        style = rest[0] if rest else None
        tol = rest[1] if len(rest) > 1 else (0, 0)
        sleeves.append(
            _sleeve(
                reg_id,
                next(aid),
                "Normal sleeve",
                target,
                model=model,
                contribution=contrib,
                distribution=dist,
                style=style,
                tol=tol,
            )
        )
    if unmanaged is not None:
        sleeves.append(_sleeve(reg_id, next(aid), "Unmanaged sleeve", unmanaged))
    for i, s in enumerate(sleeves, 1):
        s["rowId"] = i
    reg: dict[str, Any] = {
        "accountSleeves": sleeves,
        "custodialBilling": {
            "billFeeScheduleId": 4,
            "billFeeScheduleName": "UnAssigned",
            "billMasterPayoutScheduleId": 1,
            "billMasterPayoutScheduleName": "Blankdb",
            "recurringAdjustments": [],
        },
        "sleeveBilling": {
            "billFeeScheduleId": None,
            "billFeeScheduleName": None,
            "billMasterPayoutScheduleId": None,
            "billMasterPayoutScheduleName": None,
            "recurringAdjustments": [],
        },
        "excludedAssets": None,
        "includedAssets": None,
        "deletedSleeveTargets": None,
        "clientId": client_id or 29000 + reg_id % 1000,
        "registrationId": reg_id,
        "sleeveStrategyAggId": None,
        "sleeveStrategyId": None,
        "isActive": True,
        "isDoNotTrade": False,
        "custodialAccountNumber": name or f"SD_AcctNo{reg_id}",
        "asOfDate": None,
        "eclipseFirmId": None,
        "tolerancePercent": None,
        "aggregateRiskScore": None,
        "registrationRiskTolerance": None,
        "contributionAllocationMethod": "Assigned",
        "distributionAllocationMethod": "Assigned",
        "corporateActionAllocationMethod": "Sleeve Current Percent",
        "createdBy": "orionuser",
        "createdDate": "2024-04-25T00:44:03.937-05:00",
        "editedBy": "orionuser",
        "editedDate": "2024-04-25T00:44:06.187-05:00",
        "autoRebalFrequency": "None",
        "autoRebalMonth": 10,
        "autoRebalDay": 1,
        "mandate": False,
        "needsUpdate": False,
        "needsUpdateReason": None,
        "normalGroupedSleeves": {"sleeveStrategyId": None, "name": None, "sleeves": []},
        "riskScoreTotal": None,
    }
    reg.update(fields)
    counted = [s for s in sleeves if s["sleeveType"] in ("Normal sleeve", "Unmanaged sleeve")]
    reg["targetTotal"] = sum(s["targetAllocation"] for s in counted)
    reg["contributionTotal"] = sum(s["contributionAllocation"] for s in counted)
    reg["distributionTotal"] = sum(s["distributionAllocation"] for s in counted)
    return reg


def make_ticket_rows(
    instruction: dict[str, Any], batch_size: int, orders: int = 0, created: str = "2026-11-20T09:15:02.487"
) -> list[dict[str, Any]]:
    """SEI rows for a submitted ticket: one with orderId null, or one per filled order."""
    base = {
        **instruction,
        "batchSize": batch_size,
        "side": str(instruction["side"]).upper(),
        "omnibus": "AB_ABC_GL",
        "rebalancePrice": None,
        "status": "Original",
        "createDate": created,
        "changeDate": created,
    }
    if not orders:
        return [{**base, "orderId": None, "quantity": None, "omnibus": None}]
    share = instruction["target"] // orders
    return [
        {
            **base,
            "orderId": n + 1,
            "quantity": share,
            "rebalancePrice": instruction.get("orderGenerationPrice"),
            "status": "Refresh" if n else "Original",
        }
        for n in range(orders)
    ]


def demo_state() -> dict[str, Any]:
    """Live state for manifests/, with deliberate differences (see module docstring)."""
    regs = [
        # sd-regname1: targets 25/25 instead of 20/30, and a Legacy Balanced sleeve the manifest dropped.
        make_registration(
            31547,
            [(36, 25, 100, 100), (34, 25, 0, 0), (30, 50, 0, 0, 30), (52, 0, 0, 0)],
            first_account=30614,
            client_id=29685,
            name="SD_AcctNo20240424_2216",
        ),
        # rivera-household: already matches its template (quarterly, Jan 15), sleeves listed in another order.
        make_registration(
            31548,
            [(30, 50, 0, 0, 30), (36, 20, 100, 100), (34, 30, 0, 0)],
            first_account=30630,
            autoRebalFrequency="Quarterly",
            autoRebalMonth=1,
            autoRebalDay=15,
        ),
        # chen-ira: matches the template, but the do-not-trade hold was never set.
        make_registration(
            31549,
            [(36, 20, 100, 100), (34, 30, 0, 0), (30, 50, 0, 0, 30)],
            first_account=30640,
            autoRebalFrequency="Quarterly",
            autoRebalMonth=1,
            autoRebalDay=15,
        ),
        # okafor-trust: still 60/40 with no Unmanaged sleeve for the legacy position.
        make_registration(
            31550,
            [(36, 60, 60, 60, None, (2, 5)), (41, 40, 40, 40, None, (2, 5))],
            first_account=30650,
            corporateActionAllocationMethod="Sleeve Target Percent",
        ),
        # Not under management yet: candidates for `reconciler import`.
        make_registration(31551, [(45, 70, 100, 100), (41, 30, 0, 0)], first_account=30660),
        make_registration(31552, [(36, 100, 100, 100)], first_account=30670, isActive=False),
    ]
    lcg = {"batchId": "LCG-20261120-01", "strategyCode": "LCG", "affectsModel": True}
    div = {"batchId": "DIV-20261120-01", "strategyCode": "DIV", "affectsModel": True, "minimumCash": 2500}
    tickets = (
        # already sent and filled in two orders; matches the manifest
        make_ticket_rows(
            {
                **lcg,
                "tradeTicketId": 10000001,
                "masterOrderId": 5550001,
                "side": "Sell",
                "ticker": "AAPL",
                "cusip": "037833100",
                "securityName": "Apple Inc.",
                "target": 120,
                "orderGenerationPrice": 189.5,
            },
            3,
            orders=2,
        )
        # already sent, not yet filled
        + make_ticket_rows(
            {
                **div,
                "tradeTicketId": 10000101,
                "masterOrderId": 5550101,
                "side": "Sell",
                "ticker": "JNJ",
                "cusip": "478160104",
                "securityName": "Johnson & Johnson",
                "target": 200,
                "orderGenerationPrice": 154.3,
            },
            2,
        )
        # an older model change nobody manages in Git
        + make_ticket_rows(
            {
                "batchId": "SCV-20261002-01",
                "strategyCode": "SCV",
                "affectsModel": False,
                "tradeTicketId": 9000001,
                "masterOrderId": 5540001,
                "side": "Buy",
                "ticker": "IWN",
                "cusip": "464287630",
                "securityName": "iShares Russell 2000 Value ETF",
                "target": 500,
                "orderGenerationPrice": 151.2,
            },
            1,
            orders=1,
            created="2026-10-02T14:01:12.487",
        )
    )
    histories = {
        r["registrationId"]: [
            {
                "id": i + 1,
                "registrationId": r["registrationId"],
                "changeType": "Create",
                "editedBy": "orionuser",
                "editedDate": r["createdDate"],
                "description": "registration sleeved",
                "changes": [],
            }
        ]
        for i, r in enumerate(regs)
    }
    return {"registrations": regs, "tickets": tickets, "histories": {str(k): v for k, v in histories.items()}}
