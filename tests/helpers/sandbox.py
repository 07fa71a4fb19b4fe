"""The sandbox seen from a test: its control API over HTTP, its counters, edits outside Git, and waits."""

from __future__ import annotations

import time
from typing import Any

import httpx

__all__ = [
    "batch_posts",
    "control",
    "counts",
    "edit_outside_git",
    "orion_batches",
    "sei_holds_a_conflicting_ticket",
    "quiet",
    "raw_batch_status",
    "ticket_posts",
    "wait_for",
    "writes",
]


def control(sb, method: str, path: str, **kw) -> Any:
    """Call the sandbox's own /_sandbox/… API (counters, faults, state, edits outside Git)."""
    return httpx.request(method, f"{sb.url}/_sandbox{path}", timeout=kw.pop("timeout", 60), **kw).json()


def counts(sb) -> dict[str, int]:
    return control(sb, "GET", "/counters")["requests"]


def writes(sb) -> int:
    """Every write request that reached either vendor (batch POSTs and ticket POSTs)."""
    return control(sb, "GET", "/counters")["writes"]


def batch_posts(sb) -> int:
    return counts(sb).get("POST /api/v1/Trading/Sleeve/Registrations/Action/process/batch", 0)


def ticket_posts(sb) -> int:
    return counts(sb).get("POST /v1/order/tradetickets", 0)


def orion_batches(sb) -> list[dict]:
    """The batch writes the sandbox logged, in order."""
    return [w for w in sb.state.writes if w["api"] == "orion"]


def edit_outside_git(sb, rid: int, who: str, **patch) -> dict:
    """Change registration `rid` in the sandbox as someone in Orion's UI would: `set=`, `sleeves=`."""
    r = httpx.patch(f"{sb.url}/_sandbox/registrations/{rid}", json={"editedBy": who, **patch}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def raw_batch_status(vendors, batch_id: int) -> dict:
    """A batch's status exactly as the sandbox answers it, for tests of the wire format itself."""
    return vendors.orion.http.request("GET", f"/v1/Utility/BatchProcessing/{batch_id}", safe=True).json()


def wait_for(condition, timeout: float = 30.0) -> None:
    """Poll `condition` every 20 ms until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the condition")
        time.sleep(0.02)


def quiet(sb, timeout: float = 60.0) -> None:
    """Wait until no request is held by a `late` or `slow` fault: every write that will land has landed.
    A fault test checks its invariants only after this, or a duplicate arriving late goes unseen."""
    wait_for(lambda: sb.faults.held == 0, timeout)


def sei_holds_a_conflicting_ticket(sb) -> None:
    """SEI already holds ticket 10000002 (Sell MSFT, batch LCG-20261120-01) with target 75, where the
    example manifests declare 80: a conflict, since a submitted ticket cannot change."""
    row = {
        "batchId": "LCG-20261120-01",
        "batchSize": 3,
        "tradeTicketId": 10000002,
        "masterOrderId": 5550001,
        "strategyCode": "LCG",
        "side": "SELL",
        "ticker": "MSFT",
        "cusip": "594918104",
        "securityName": "Microsoft Corp.",
        "target": 75,
        "orderGenerationPrice": 415.25,
        "affectsModel": True,
        "orderId": None,
        "status": "Original",
        "createDate": "2026-11-20T10:00:00",
        "changeDate": "2026-11-20T11:00:00",
    }
    control(sb, "POST", "/tickets", json={"rows": [row]})
