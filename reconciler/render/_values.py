"""Small formatting helpers shared by the renderers."""

from __future__ import annotations

import json
from typing import Any

from reconciler.escaping import VENDOR_TEXT_LIMIT, terminal, visible
from reconciler.model import Change, FieldChange

__all__ = ["describe_instruction", "money", "show", "sleeve_line", "summary_line", "ticket_details", "totals_line"]


def show(value: Any, limit: int = VENDOR_TEXT_LIMIT) -> str:
    """A value as a reviewer reads it: JSON scalars, compact objects; escaped, and bounded."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dict):
        return visible("{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}", limit)
    return visible(json.dumps(value, default=str, ensure_ascii=False), limit)


def sleeve_line(f: FieldChange) -> str | None:
    """A whole sleeve added (`+`) or removed (`-`), the same line in text and markdown; None for any other
    field change, which each format shows its own way."""
    if f.before is None and isinstance(f.after, dict):
        return f"+ {terminal(f.path, 200)}: new sleeve {show({k: v for k, v in f.after.items() if k != 'sleeveType'})}"
    if f.after is None and isinstance(f.before, dict):
        return f"- {terminal(f.path, 200)}: remove sleeve (sent in deletedSleeveTargets)"
    return None


def money(x: float) -> str:
    return f"${x:,.2f}"


def describe_instruction(c: Change) -> str:
    d = c.ticket
    price = d.get("orderGenerationPrice")
    text = f"{terminal(d.get('side'), 10)} {terminal(d.get('target'), 20)} {terminal(d.get('ticker'), 20)}"
    if price is not None:
        text += f" @ {price:g} = {money(c.notional)}"
    return f"{text}  (batch {terminal(d.get('batchId'), 80)}, batchSize {d.get('batchSize')})"


# the fields describe_instruction already names; ticket_details shows the rest
_HEADLINE = ("side", "target", "ticker", "orderGenerationPrice", "batchId", "batchSize", "tradeTicketId")


def ticket_details(c: Change) -> list[tuple[str, str]]:
    """Every other field a new ticket will carry, (name, value as shown): nothing it sends is hidden."""
    return [(k, show(v)) for k, v in c.ticket.items() if k not in _HEADLINE]


def summary_line(s: dict) -> str:
    return (
        f"Plan: {s['create']} to create, {s['update']} to update, {s['remove']} to remove, "
        f"{s['conflict']} conflict{'s' * (s['conflict'] != 1)}; {s['submissions']} submission"
        f"{'s' * (s['submissions'] != 1)} ({s['orion_batches']} Orion batch{'es' * (s['orion_batches'] != 1)}, "
        f"{s['sei_requests']} SEI request{'s' * (s['sei_requests'] != 1)})"
    )


def totals_line(s: dict) -> str:
    return (
        f"Registrations touched: {s['registrations_touched']}; gross buy notional {money(s['gross_buy_notional'])}; "
        f"gross sell notional {money(s['gross_sell_notional'])}"
    )
