"""What the waves of one apply share: the run's findings so far, and the tools every wave uses.

`RunContext` is what one run has learned (results, what may have left, batches still open), shared
by the waves' worker threads under its lock. `Kit` is what every wave is handed at construction:
the vendors, the journal, claims, evidence, the manifests' resources and the hooks (progress, stop,
window guard, clock). Declarations are looked up per batch, not held (plan/desired.py). Both are
private to apply; the evaluator builds them (evaluator.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.apply.outcomes import ItemResult, ItemStatus
from reconciler.apply.parking import Parking, Steps
from reconciler.apply.recovery import Evidence
from reconciler.config import Settings
from reconciler.escaping import bounded
from reconciler.model import Action, Source, Submission
from reconciler.plan.desired import Declarations, Desired
from reconciler.plan.diff import RegistrationDiff
from reconciler.plan.stages import PendingBatch
from reconciler.state.claims import Claims
from reconciler.state.journal import BatchState, Journal
from reconciler.vendors import Vendors

__all__ = ["Kit", "RunContext"]

_UNKNOWN_SOURCE = Source("(no longer in the manifests)", 0)


@dataclass
class RunContext:
    """What one run has learned so far; shared by its worker threads under `lock`."""

    run_id: int
    results: dict[str, ItemResult] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)  # addresses whose write may have left
    open_batches: set[str] = field(default_factory=set)  # this run's batches not (yet) ended
    tracked: dict[str, PendingBatch] = field(default_factory=dict)  # address → earlier run's batch
    tracked_ended: dict[str, str] = field(default_factory=dict)  # local id → how it ended
    gate: str | None = None  # why the SEI wave may not start
    converged: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Kit:
    """The tools and hooks every wave of a run shares, fixed when the evaluator is built."""

    vendors: Vendors
    journal: Journal
    settings: Settings
    claims: Claims
    evidence: Evidence
    desired: Declarations  # what the manifests declare, looked up per batch (plan/desired.py)
    stop: threading.Event
    progress: Callable[[str, str], None]
    window_guard: Callable[[str], str | None]
    clock: Callable[[], float]
    orion_endpoint: str
    sei_endpoint: str
    parking: Parking  # writes in doubt, settled beside the waves
    sources: dict[str, Source] = field(default_factory=dict)  # address → file and line, as looked up

    def declarations(self, addresses: Iterable[str]) -> dict[str, Desired]:
        """The declarations of `addresses`, in one lookup; their sources are kept for the results."""
        return {a: d for a, (d, _) in self.planned(addresses).items()}

    def planned(self, addresses: Iterable[str]) -> dict[str, tuple[Desired, RegistrationDiff | None]]:
        """Declarations with the plan's diffs (for a batch's bodies), in one lookup."""
        found = self.desired.planned(addresses)
        for address, (d, _) in found.items():
            self.sources[address] = d.source
        return found

    def source(self, address: str) -> Source:
        known = self.sources.get(address)
        if known is None:
            res = self.desired.get(address)
            known = self.sources[address] = res.source if res is not None else _UNKNOWN_SOURCE
        return known

    def record(self, ctx: RunContext, address: str, status: ItemStatus, message: str, ref: str | None = None) -> None:
        action = (Action.UPDATE if address.startswith("SleeveRegistration/") else Action.CREATE).value
        item = ItemResult(address, action, status, message, self.source(address), ref)
        with ctx.lock:
            ctx.results[address] = item
        self.progress("item", f"{status.value} {address}")

    def end_unfinished(self, address: str, ctx: RunContext, why: str) -> None:
        if address in ctx.sent:
            self.record(
                ctx,
                address,
                ItemStatus.UNKNOWN,
                f"apply stopped after this was sent ({why}); a rerun reads live state before sending anything",
            )
        else:
            self.record(ctx, address, ItemStatus.SKIPPED, f"not sent: {why}")

    def guarded(self, work: Callable[[Submission, RunContext], None], sub: Submission, ctx: RunContext) -> None:
        """Run one submission's work; whatever escapes ends its items, reported."""
        try:
            work(sub, ctx)
        except Exception as e:
            why = f"{type(e).__name__}: {bounded(e)}"
            for a in sub.items:
                if a not in ctx.results:
                    self.end_unfinished(a, ctx, why)

    def park(self, steps: Steps[Any], then: Callable[[Any], None], sub: Submission, ctx: RunContext) -> None:
        """Settle a write in doubt beside the wave; whatever escapes ends its items, reported (as `guarded`)."""

        def failed(e: BaseException) -> None:
            why = f"{type(e).__name__}: {bounded(e)}"
            for a in sub.items:
                if a not in ctx.results:
                    self.end_unfinished(a, ctx, why)

        self.parking.park(steps, then, failed)

    def batch_state(self, local_id: str, state: str, **kw: Any) -> None:
        """Journal a batch's new state; once it is no longer open, its registrations' claims end."""
        self.journal.batch_state(local_id, state, **kw)
        if state not in BatchState.OPEN:
            self.claims.release(local_id)
