"""What a write's result means, decided by pure code: item statuses, refusals, ticket verdicts.

Kept apart from the evaluator so each rule is a row in a table test (tests/apply/test_outcomes.py):
- A failed write is *refused* only when the HTTP layer proved the server did not act
  (`ApiError.refused`); every other exception, a bug included, leaves the write *in doubt*.
- A batch item is `applied` only when the registration re-read after the batch ended matches its
  manifest; `failed` when the vendor said why, or the whole batch failed; otherwise `unknown`.
- A ticket read back is `match`, `absent`, or `differs` (with the fields).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from reconciler.config.ignore import IgnoreRule
from reconciler.errors import AmbiguousWriteError, ApiError, TicketExistsError
from reconciler.escaping import bounded
from reconciler.model import DesiredInstruction, Source
from reconciler.plan.diff import diff_instruction

__all__ = [
    "ApplyResult",
    "ItemResult",
    "ItemStatus",
    "Verdict",
    "VerdictKind",
    "batch_item_outcome",
    "is_refusal",
    "ticket_verdict",
]


class ItemStatus(enum.StrEnum):
    APPLIED = "applied"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"  # never sent


@dataclass(frozen=True)
class ItemResult:
    address: str
    action: str
    status: ItemStatus
    message: str
    source: Source
    reference: str | None = None  # "batch 26140410" or "ticket 10000002"


@dataclass(frozen=True)
class ApplyResult:
    items: tuple[ItemResult, ...]
    recovered: tuple[str, ...]
    converged: bool
    interrupted: bool
    started: str
    finished: str
    error: str | None = None  # what stopped the run early, if anything did
    # resources the manifests declare that this run's --target/--exclude/--selector left out: not
    # checked, so "converged" covers the selection only, and says so
    unchecked: int = 0
    selected: int = 0  # resources the selection kept (checked), when `unchecked` is set

    def counts(self) -> dict[str, int]:
        return {s.value: sum(1 for i in self.items if i.status is s) for s in ItemStatus}

    @property
    def exit_code(self) -> int:
        ok = self.converged and self.error is None and all(i.status is ItemStatus.APPLIED for i in self.items)
        return 0 if ok else 3


def is_refusal(exc: BaseException) -> bool:
    """True only if the server surely did not act on the write that raised `exc`."""
    return isinstance(exc, ApiError) and exc.refused and not isinstance(exc, (AmbiguousWriteError, TicketExistsError))


class VerdictKind(enum.StrEnum):
    """What SEI holds for a ticket, against the manifest."""

    MATCH = "match"  # the ticket is there with the declared values
    ABSENT = "absent"  # no row for it
    DIFFERS = "differs"  # there, with other values
    PENDING = "pending"  # absent so far, and this run stops reading before the window ends: still in doubt


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    detail: str = ""


def ticket_verdict(
    desired: DesiredInstruction | None, rows: list[dict], ignore: tuple[IgnoreRule, ...] = ()
) -> Verdict:
    """What SEI holds for a ticket, compared with the manifest; with no declaration at hand (recovery,
    before the manifests are read), presence alone: stored is stored, and the plan compares the values."""
    if not rows:
        return Verdict(VerdictKind.ABSENT)
    if desired is None:
        return Verdict(VerdictKind.MATCH, "at SEI")
    d = diff_instruction(desired, rows, ignore)
    if not d.conflict:
        return Verdict(VerdictKind.MATCH)
    return Verdict(
        VerdictKind.DIFFERS, ", ".join(f"{f.path}: {bounded(f.before, 60)} vs {bounded(f.after, 60)}" for f in d.fields)
    )


def batch_item_outcome(
    *,
    batch_id: int,
    batch_status: str,
    matches_now: bool | None,
    error_hint: str | None,
    batch_errors: tuple[str, ...] = (),
    batch_message: str | None = None,
    errors_unreadable: str | None = None,
) -> tuple[ItemStatus, str]:
    """One registration of an ended batch: `matches_now` is None when the re-read did not return it."""
    if matches_now:
        return ItemStatus.APPLIED, f"batch {batch_id} {batch_status}"
    if errors_unreadable:
        why = "could not be re-read" if matches_now is None else "does not match the plan"
        return ItemStatus.UNKNOWN, (
            f"batch {batch_id} ended {batch_status}; the registration {why}, and the "
            f"batch's errors could not be read ({bounded(errors_unreadable, 200)})"
        )
    if error_hint:
        return ItemStatus.FAILED, bounded(error_hint)
    if batch_status == "Failed":
        detail = "; ".join(bounded(e) for e in batch_errors[:2]) or bounded(batch_message or "no detail")
        return ItemStatus.FAILED, f"batch {batch_id} Failed: {detail}"
    if matches_now is None:
        return ItemStatus.UNKNOWN, f"batch {batch_id} ended {batch_status}, but the registration could not be re-read"
    return ItemStatus.UNKNOWN, f"batch {batch_id} ended {batch_status}, but the registration does not match the plan"
