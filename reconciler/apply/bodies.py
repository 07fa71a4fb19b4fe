"""Just-in-time bodies: a batch's registrations are read fresh right before it is POSTed.

A registration goes out as the live object with the declared fields laid over it. Built from the
plan's read, an apply of 100,000 registrations would send objects read many minutes earlier, and an
edit made in Orion in between would be overwritten without anyone noticing. So each batch (at most
100 registrations) reads its registrations in one bulk call, and compares each with the fingerprint
the plan computed for it (plan/builder.py `fingerprint_registration`: everything a user can set):

- the same: the body is built from the fresh object, so the window for a lost update is the
  seconds between this read and the POST;
- different, or gone: the registration is not sent. It ends `failed` as stale, naming who changed it
  and when, and the next plan shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.config.ignore import IgnoreRule
from reconciler.escaping import bounded
from reconciler.model import DesiredRegistration
from reconciler.plan.builder import build_payload, fingerprint_registration
from reconciler.plan.diff import RegistrationDiff, diff_registration
from reconciler.vendors.orion import OrionClient

__all__ = ["FreshBatch", "fresh_bodies"]


@dataclass
class FreshBatch:
    ready: list[tuple[DesiredRegistration, dict]] = field(default_factory=list)  # to send, body from fresh
    stale: list[tuple[str, str]] = field(default_factory=list)  # (address, why it is not sent)
    settled: list[str] = field(default_factory=list)  # already as declared (an ignore rule began since the plan)


def fresh_bodies(
    orion: OrionClient,
    items: list[tuple[DesiredRegistration, str, RegistrationDiff | None]],
    ignore: tuple[IgnoreRule, ...] = (),
) -> FreshBatch:
    """Read `items` (declaration, plan fingerprint, the plan's diff if kept) fresh in one bulk call; sort
    them into bodies to send and stale ones. Raises ApiError when the read fails: then nothing of the batch
    is sent. A registration whose fingerprint is the plan's differs from its manifest exactly as the plan
    found, so the plan's diff lays the declared fields over the fresh object without diffing again."""
    live = orion.list_with_sleeves([d.registration_id for d, _, _ in items])
    out = FreshBatch()
    for desired, planned, plan_diff in items:
        current = live.get(desired.registration_id)
        if current is None:
            out.stale.append(
                (
                    desired.address,
                    f"stale: registration {desired.registration_id} is gone from Orion since the plan; not sent",
                )
            )
            continue
        if fingerprint_registration(current) != planned:
            out.stale.append(
                (
                    desired.address,
                    f"stale: changed in Orion since the plan (edited by {bounded(current.get('editedBy'), 80)} at "
                    f"{bounded(current.get('editedDate'), 40)}); not sent, so that edit is not overwritten. "
                    "The next plan shows this registration as it is now",
                )
            )
            continue
        d = plan_diff if plan_diff is not None else diff_registration(desired, current, ignore)
        if not d.changed:  # an ignore rule began to apply since the plan (they carry dates)
            out.settled.append(desired.address)
            continue
        out.ready.append((desired, build_payload(desired, current, d, owned=True)))  # fingerprinted above
    return out
