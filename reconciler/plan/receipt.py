"""A saved plan is a receipt: apply recomputes the plan and sends only what the receipt shows.

`receipt_problems` compares a saved plan with the one computed now from the manifests and live
state: the endpoints it was made against, its expiry, the manifests' digest, the live state of what
it touches (named, with who edited it), and finally the submissions themselves: the same items in
the same requests, with the same user-settable content. A hand-edited plan (a ticket target of 5500
where the manifest says 55) or a plan made against another tenant is therefore refused, naming the
difference, before anything is written.
"""

from __future__ import annotations

import datetime as dt
import json

from reconciler.escaping import bounded
from reconciler.fields import SERVER_OWNED_REGISTRATION_FIELDS, SERVER_OWNED_SLEEVE_FIELDS
from reconciler.model import Action, Plan, Submission
from reconciler.plan.builder import fingerprint_registration, fingerprint_ticket
from reconciler.vendors.reads import LiveState

__all__ = ["endpoint_problems", "receipt_problems", "stale_reasons"]


def endpoint_problems(saved: dict[str, str], current: dict[str, str]) -> list[str]:
    return [
        f"the plan was made against {api} {saved.get(api) or '(not recorded)'}, not {current[api]}"
        for api in ("orion", "sei")
        if saved.get(api) != current[api]
    ]


def stale_reasons(
    plan: Plan, live: LiveState, *, expected_digest: str, digest: str, expired: bool, expires_at: dt.datetime
) -> list[str]:
    """Why a saved plan may not be applied as it stands: manifests, expiry, or touched live state changed."""
    reasons = []
    if expired:
        reasons.append(f"the plan expired at {expires_at:%Y-%m-%d %H:%M %Z}")
    if digest != expected_digest:
        reasons.append("the manifests changed since the plan was made")
    for c in plan.changes:
        if c.action is Action.UPDATE:
            reg_id = (c.payload or {}).get("registrationId")
            current = live.registrations.get(reg_id) if isinstance(reg_id, int) else None
            if current is None:
                reasons.append(f"{c.address}: registration {reg_id} is gone from Orion")
            elif fingerprint_registration(current) != c.fingerprint:
                reasons.append(
                    f"{c.address}: live state changed since the plan (edited by "
                    f"{bounded(current.get('editedBy'), 80)} at {bounded(current.get('editedDate'), 40)})"
                )
        elif c.action in (Action.CREATE, Action.CONFLICT):
            ticket = int(c.address.split("/", 1)[1])
            if fingerprint_ticket(live.tickets.get(ticket, [])) != c.fingerprint:
                reasons.append(f"{c.address}: the ticket at SEI changed since the plan")
    return reasons


def _content(sub: Submission) -> str:
    """What a submission asks a vendor to do, without server-owned churn (currentValue and the like)."""
    if sub.api == "sei":
        body = sub.body
    else:
        body = [
            {
                **{k: v for k, v in reg.items() if k not in SERVER_OWNED_REGISTRATION_FIELDS},
                "accountSleeves": [
                    {k: v for k, v in s.items() if k not in SERVER_OWNED_SLEEVE_FIELDS}
                    for s in reg.get("accountSleeves") or []
                ],
            }
            for reg in sub.body or []
        ]
    return json.dumps(body, sort_keys=True, default=str)


def receipt_problems(saved: Plan, fresh: Plan) -> list[str]:
    """How the submissions apply would send now differ from the ones the saved plan shows."""
    problems: list[str] = []
    want = {(s.api, s.items): s for s in saved.submissions}
    have = {(s.api, s.items): s for s in fresh.submissions}
    for key in sorted(set(want) | set(have)):
        api, items = key
        label = (
            items[0] if len(items) == 1 else f"the {api} batch of {', '.join(items[:3])}{'…' if len(items) > 3 else ''}"
        )
        if key not in have:
            problems.append(f"{label}: in the saved plan, but not in the plan as it stands now")
        elif key not in want:
            problems.append(f"{label}: the plan as it stands now sends it; the saved plan does not")
        elif _content(want[key]) != _content(have[key]):
            problems.append(
                f"{label}: the saved plan's request body differs from what the manifests and live "
                "state give now (was the file edited?)"
            )
    return problems
