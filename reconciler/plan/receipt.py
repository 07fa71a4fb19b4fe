"""A saved plan is a receipt: apply recomputes the plan and sends only what the receipt shows.

The saved plan is compared with the one computed now, by the same stream apply sends from: the
endpoints it was made against, its expiry, the manifests' digest, the live state of what it touches
(by fingerprint; named, with who edited it), and finally the submissions themselves: the same items
in the same requests, each with the same declared changes (a ticket: the same body). A hand-edited
plan (a ticket target of 5500 where the manifest says 55, a sleeve's "after" value) or a plan made
against another tenant is therefore refused, naming the difference, before anything is written.
A saved plan holds no registration bodies: those are built from a fresh read just before each batch.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from reconciler.escaping import bounded
from reconciler.model import Action, Change, Plan

__all__ = ["endpoint_problems", "receipt_problems", "stale_reasons"]


def endpoint_problems(saved: dict[str, str], current: dict[str, str]) -> list[str]:
    return [
        f"the plan was made against {api} {saved.get(api) or '(not recorded)'}, not {current[api]}"
        for api in ("orion", "sei")
        if saved.get(api) != current[api]
    ]


def stale_reasons(
    saved: Plan,
    fresh: Plan,
    *,
    expected_digest: str,
    digest: str,
    expired: bool,
    expires_at: dt.datetime,
    in_doubt: frozenset[str] = frozenset(),
    read: Callable[[list[int]], dict[int, dict]] = lambda ids: {},
) -> list[str]:
    """Why a saved plan may not be applied as it stands: expiry, the manifests, or the live state of what
    it touches. The live state is compared by fingerprint, with the plan computed now (`fresh`, from the
    same stream apply sends from); `read` fetches the few registrations that changed, to name who
    edited them. What an earlier apply left `in_doubt` was not planned now, and is named as such."""
    reasons = []
    if expired:
        reasons.append(f"the plan expired at {expires_at:%Y-%m-%d %H:%M %Z}")
    if digest != expected_digest:
        reasons.append("the manifests changed since the plan was made")
    now = {c.address: c for c in fresh.changes}
    edited: list[tuple[str, int | None]] = []
    for c in saved.changes:
        current = now.get(c.address)
        if c.address in in_doubt:
            if c.action is not Action.NO_OP:
                reasons.append(f"{c.address}: a write from an earlier run is still in doubt")
        elif c.action is Action.UPDATE:
            if current is None or current.action is not Action.UPDATE or current.fingerprint != c.fingerprint:
                edited.append((c.address, c.registration_id))
        elif c.action in (Action.CREATE, Action.CONFLICT):
            if current is None or current.fingerprint != c.fingerprint:
                reasons.append(f"{c.address}: the ticket at SEI changed since the plan")
    if edited:
        ids = [rid for _, rid in edited if rid is not None]
        live = read(ids) if ids else {}
        for address, rid in edited:
            who = live.get(rid) if rid is not None else None
            if who is None:
                reasons.append(f"{address}: live state changed since the plan")
            else:
                reasons.append(
                    f"{address}: live state changed since the plan (edited by "
                    f"{bounded(who.get('editedBy'), 80)} at {bounded(who.get('editedDate'), 40)})"
                )
    return reasons


def _declared(change: Change | None) -> Any:
    """What a change asks of a vendor, as a reviewer saw it: the declared fields before → after, the
    sleeves removed and added; for a ticket, its exact request body."""
    if change is None:
        return None
    if change.action is Action.CREATE:
        return change.payload
    return {
        "fields": [[f.path, f.before, f.after] for f in change.fields],
        "removed": list(change.removed_sleeves),
        "added": change.added_sleeves,
    }


def receipt_problems(saved: Plan, fresh: Plan) -> list[str]:
    """How the submissions apply would send now differ from the ones the saved plan shows: the same items
    in the same requests, each with the same declared content (a ticket: the same body)."""
    problems: list[str] = []
    want = {(s.api, s.items): s for s in saved.submissions}
    have = {(s.api, s.items): s for s in fresh.submissions}
    saved_changes = {c.address: c for c in saved.changes}
    fresh_changes = {c.address: c for c in fresh.changes}
    for key in sorted(set(want) | set(have)):
        api, items = key
        label = (
            items[0] if len(items) == 1 else f"the {api} batch of {', '.join(items[:3])}{'…' if len(items) > 3 else ''}"
        )
        if key not in have:
            problems.append(f"{label}: in the saved plan, but not in the plan as it stands now")
        elif key not in want:
            problems.append(f"{label}: the plan as it stands now sends it; the saved plan does not")
        else:
            problems += [
                f"{a}: the saved plan's request body differs from what the manifests and live "
                "state give now (was the file edited?)"
                for a in items
                if _canonical(_declared(saved_changes.get(a))) != _canonical(_declared(fresh_changes.get(a)))
            ]
    return problems


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
