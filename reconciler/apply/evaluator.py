"""Apply: one evaluator over the plan's stages (plan/stages.py), with the journal as the authority.

- OrionWave (batches.py): batches claimed, journaled, sent, polled, classified per item; lost
  answers looked for, never resubmitted; earlier runs' batches tracked beside this run's.
- Gate and SeiWave (tickets.py): SEI requests start only once every batch has ended; one POST
  per ticket, only if the journal and the claims allow it.
- Confirm: a fresh read of everything touched or in doubt; converged only if all of it matches.

Whatever escapes (a malformed vendor answer, a database error, a bug) ends every item as applied,
failed, unknown (it may have been sent) or skipped (it was not), and the run still returns a result.
Classification rules live in outcomes.py as pure functions. Dispatch over stages is a `match` that
ends in `assert_never`, as the explainer's is (plan/explain.py): a new stage cannot be skipped.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import assert_never

from reconciler.apply.batches import BatchWave
from reconciler.apply.context import Kit, RunContext
from reconciler.apply.heap import long_lived_heap
from reconciler.apply.outcomes import ApplyResult, ItemStatus
from reconciler.apply.recovery import Evidence
from reconciler.apply.tickets import MAX_TICKET_SENDS, TicketWave
from reconciler.config import Settings
from reconciler.config.urls import endpoint_label
from reconciler.errors import ApiError, LiveStateError
from reconciler.escaping import bounded
from reconciler.model import DesiredInstruction, DesiredRegistration, ManifestSet
from reconciler.plan.desired import Declarations, DesiredIndex
from reconciler.plan.diff import diff_instruction, diff_registration
from reconciler.plan.stages import Confirm, Gate, OrionWave, Recover, SeiWave, Stage
from reconciler.state.claims import Claims
from reconciler.state.journal import Journal
from reconciler.vendors import Vendors
from reconciler.vendors.reads import read_live_state

__all__ = ["Evaluator", "MAX_TICKET_SENDS"]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Evaluator:
    """Runs the stages of one apply. Every hook is given here, at construction, never patched in later.

    `claims`: per-resource claims shared with other workspaces (state/claims.py); a registration or ticket
    another workspace holds is never sent. `window_guard(api)`: why a wave to `api` may not start now
    (an enforced change window is closed, by the real clock), or None."""

    def __init__(
        self,
        vendors: Vendors,
        journal: Journal,
        settings: Settings,
        desired: Declarations | ManifestSet,
        *,
        claims: Claims,
        window_guard: Callable[[str], str | None] = lambda api: None,
        progress: Callable[[str, str], None] | None = None,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        stop = stop or threading.Event()
        progress = progress or (lambda kind, text: None)
        if isinstance(desired, ManifestSet):  # tests and tools: everything already in memory
            desired = DesiredIndex.of(desired)
        # waits for evidence end early on Ctrl-C: nothing is sent
        evidence = Evidence(
            vendors, journal, settings, desired, progress=progress, sleep=sleep, clock=clock, interrupted=stop.is_set
        )
        self.kit = Kit(
            vendors,
            journal,
            settings,
            claims,
            evidence,
            desired,
            stop,
            progress,
            window_guard,
            clock,
            endpoint_label(settings.orion.base_url),
            endpoint_label(settings.sei.base_url),
            evidence.parking("doubt"),
        )
        self.batches, self.tickets = BatchWave(self.kit), TicketWave(self.kit)
        self.timings: dict[str, float] = {}  # seconds per stage, for RECONCILER_STATS

    # --- the Recover stage (before the plan) ------------------------------------------------------

    def recover(self) -> Recover:
        recovered = self.kit.evidence.recover()
        self.kit.claims.settle(self.kit.journal)  # what recovery settled, others may send
        return recovered

    # --- the other stages -------------------------------------------------------------------------

    def run(self, stages: tuple[Stage, ...], run_id: int) -> ApplyResult:
        started = _now()
        kit, ctx = self.kit, RunContext(run_id)
        kit.claims.run = run_id
        recovered: tuple[str, ...] = ()
        planned: list[str] = []
        busy: list[tuple[str, str]] = []
        for stage in stages:
            match stage:
                case Recover():
                    recovered = stage.notes
                case OrionWave():
                    planned += [a for s in stage.batches for a in s.items]
                case SeiWave():
                    planned += [a for s in stage.tickets for a in s.items]
                case Confirm():
                    busy = list(stage.busy)
                case Gate():
                    pass
                case _:
                    assert_never(stage)
        error = None
        try:
            with long_lived_heap():  # what the plan left alive lives to the end of the run (apply/heap.py)
                for stage in stages:
                    began = time.perf_counter()
                    self._run_stage(stage, ctx)
                    name = type(stage).__name__
                    self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - began
        except Exception as e:  # nothing half-applied goes unreported: see the loop below
            error = f"{type(e).__name__}: {bounded(e)}"
        finally:
            kit.parking.join()  # a stage that raised may leave writes in doubt being settled: they end first
            kit.parking.close()
        for a in planned:
            if a not in ctx.results:
                kit.end_unfinished(a, ctx, error or "the run ended before this item was handled")
        for a, why in busy:
            if a not in ctx.results:
                kit.record(ctx, a, ItemStatus.UNKNOWN, why)
        try:
            kit.claims.settle(kit.journal)
        except Exception as e:  # a claim left behind is stale once the journal closed it: others take it over
            error = error or f"releasing claims: {type(e).__name__}: {bounded(e)}"
        order = planned + [a for a, _ in busy if a not in planned]
        items = tuple(ctx.results[a] for a in dict.fromkeys(order) if a in ctx.results)
        return ApplyResult(items, recovered, ctx.converged and error is None, kit.stop.is_set(), started, _now(), error)

    def _run_stage(self, stage: Stage, ctx: RunContext) -> None:
        match stage:
            case Recover():
                pass  # ran before the plan was made (`recover`)
            case OrionWave():
                self.batches.run(stage, ctx)
            case Gate():
                self.tickets.gate(stage, ctx)
            case SeiWave():
                self.tickets.run(stage, ctx)
            case Confirm():
                self._confirm(stage, ctx)
            case _:
                assert_never(stage)

    # --- confirm ----------------------------------------------------------------------------------

    def _confirm(self, stage: Confirm, ctx: RunContext) -> None:
        """A fresh read of what no read has confirmed yet: every ticket this run sent, and everything earlier
        runs left in doubt; converged only if it all matches. A registration this run sent was confirmed
        by the read after its batch ended (batches.py `_classify`): nothing of ours writes it after that."""
        kit = self.kit
        sent_tickets = [
            a
            for a in stage.addresses
            if a.startswith("TradeInstruction/")
            and (i := ctx.results.get(a)) is not None
            and i.status is ItemStatus.APPLIED
        ]
        addresses = list(dict.fromkeys(sent_tickets + [a for a, _ in stage.busy]))
        desired = kit.declarations(addresses)
        regs = {a: d for a, d in desired.items() if isinstance(d, DesiredRegistration)}
        instrs = {a: d for a, d in desired.items() if isinstance(d, DesiredInstruction)}
        try:
            live = read_live_state(
                kit.vendors, list(regs.values()), list(instrs.values()), kit.settings, missing_ok=True
            )
        except (ApiError, LiveStateError) as e:
            for a in sent_tickets:
                i = ctx.results[a]
                kit.record(
                    ctx, a, ItemStatus.UNKNOWN, f"{i.message}; the confirming read failed: {bounded(e)}", i.reference
                )
            ctx.converged = False
            return

        def matches(a: str) -> bool:
            if a in regs:
                current = live.registrations.get(regs[a].registration_id)
                return current is not None and not diff_registration(regs[a], current, kit.settings.ignore).changed
            if a in instrs:
                rows = live.tickets.get(instrs[a].ticket_id, [])
                return bool(rows) and not diff_instruction(instrs[a], rows, kit.settings.ignore).conflict
            return False

        for a in sent_tickets:
            i = ctx.results[a]
            if not matches(a):
                kit.record(
                    ctx,
                    a,
                    ItemStatus.UNKNOWN,
                    f"{i.message}, but a fresh read does not match the manifest",
                    i.reference,
                )
        for a, why in stage.busy:
            pending = ctx.tracked.get(a)
            ended = ctx.tracked_ended.get(pending.local_id) if pending else None
            if ended and matches(a):
                kit.record(ctx, a, ItemStatus.APPLIED, f"applied by an earlier run's batch ({ended})")
            elif ended:
                kit.record(
                    ctx,
                    a,
                    ItemStatus.FAILED,
                    f"an earlier run's batch ended ({ended}) but the registration "
                    "does not match its manifest; rerun apply to plan it again",
                )
            elif a in instrs and why.startswith("sent by an earlier run") and matches(a):
                kit.record(ctx, a, ItemStatus.APPLIED, "sent by an earlier run; SEI has it")
            else:
                kit.record(ctx, a, ItemStatus.UNKNOWN, why)
        ctx.converged = all(i.status is ItemStatus.APPLIED for i in ctx.results.values())
