"""Apply: one evaluator over the plan's stages (stages.py), with the journal as the authority.

- OrionWave: each batch is journaled before it is sent, polled with backoff until `isDone`, its
  /Errors read, its registrations re-read to decide per item. A batch whose answer was lost is never
  resubmitted: it is looked for (recovery.Evidence) and tracked if found. Earlier runs' batches still
  processing are tracked beside this run's.
- Gate: SEI requests start only once every one of those batches has ended.
- SeiWave: one POST per ticket, only if the journal allows it (`why_not_send`). After an ambiguous
  outcome the ticket is read back over a settle window; it is sent again only if every read-back,
  the last past the window, showed it absent, and at most once more.
- Confirm: a fresh read of everything touched or in doubt; converged only if all of it matches.

Whatever escapes (a malformed vendor answer, a database error, a bug) ends every item as applied,
failed, unknown (it may have been sent) or skipped (it was not), and the run still returns a result.
Classification rules live in outcomes.py as pure functions.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from reconciler.diff import diff_instruction, diff_registration
from reconciler.errors import ApiError, LiveStateError, TicketExistsError
from reconciler.escaping import bounded
from reconciler.journal import BatchState, Journal, TicketEvent
from reconciler.live import read_live_state
from reconciler.model import Action, ManifestSet, Source, Submission
from reconciler.outcomes import ApplyResult, ItemResult, ItemStatus, VerdictKind, batch_item_outcome, is_refusal
from reconciler.recovery import Evidence, EvidenceKind
from reconciler.stages import Confirm, Gate, OrionWave, PendingBatch, Recover, SeiWave, Stage

__all__ = ["Evaluator", "MAX_TICKET_SENDS"]

# A ticket is POSTed at most this many times in a run, the second only after read-backs over a whole
# settle window all showed SEI does not have the first.
MAX_TICKET_SENDS = 2
_UNKNOWN_SOURCE = Source("(no longer in the manifests)", 0)


@dataclass
class _Run:
    """What one run has learned so far; private to the evaluator, shared by its worker threads."""

    run_id: int
    results: dict[str, ItemResult] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)          # addresses whose write may have left
    open_batches: set[str] = field(default_factory=set)  # this run's batches not (yet) ended
    tracked: dict[str, PendingBatch] = field(default_factory=dict)   # address → earlier run's batch
    tracked_ended: dict[str, str] = field(default_factory=dict)      # local id → how it ended
    gate: str | None = None                              # why the SEI wave may not start
    converged: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Evaluator:
    def __init__(self, vendors, journal: Journal, settings, manifests: ManifestSet, *,
                 progress: Callable[[str, str], None] | None = None, stop: threading.Event | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time):
        self.vendors, self.journal, self.settings = vendors, journal, settings
        self.regs = {r.address: r for r in manifests.registrations}
        self.instrs = {i.address: i for i in manifests.instructions}
        self.stop = stop or threading.Event()
        self.sleep, self.clock = sleep, clock
        self.evidence = Evidence(vendors, journal, settings, self.instrs, progress=self._note, sleep=sleep, clock=clock)
        self.evidence.interrupted = self.stop.is_set   # waits for evidence end early on Ctrl-C: nothing is sent
        self.progress = progress or (lambda kind, text: None)
        # policy windows: why a wave to an API may not start now (a window closed meanwhile), or None
        self.window_guard: Callable[[str], str | None] = lambda api: None

    def _note(self, kind: str, text: str) -> None:
        self.progress(kind, text)

    # --- the Recover stage (before the plan) ------------------------------------------------------

    def recover(self) -> Recover:
        return self.evidence.recover()

    # --- the other stages -------------------------------------------------------------------------

    def run(self, stages: tuple[Stage, ...], run_id: int) -> ApplyResult:
        started = _now()
        ctx = _Run(run_id)
        recovered: tuple[str, ...] = ()
        planned: list[str] = []
        busy: list[tuple[str, str]] = []
        error = None
        for stage in stages:
            if isinstance(stage, Recover):
                recovered = stage.notes
            elif isinstance(stage, OrionWave):
                planned += [a for s in stage.batches for a in s.items]
            elif isinstance(stage, SeiWave):
                planned += [a for s in stage.tickets for a in s.items]
            elif isinstance(stage, Confirm):
                busy = list(stage.busy)
        try:
            for stage in stages:
                if isinstance(stage, OrionWave):
                    self._orion_wave(stage, ctx)
                elif isinstance(stage, Gate):
                    self._gate(stage, ctx)
                elif isinstance(stage, SeiWave):
                    self._sei_wave(stage, ctx)
                elif isinstance(stage, Confirm):
                    self._confirm(stage, ctx)
        except Exception as e:   # nothing half-applied goes unreported: see the loop below
            error = f"{type(e).__name__}: {bounded(e)}"
        for a in planned:
            if a not in ctx.results:
                self._end_unfinished(a, ctx, error or "the run ended before this item was handled")
        for a, why in busy:
            if a not in ctx.results:
                self._record(ctx, a, ItemStatus.UNKNOWN, why)
        order = planned + [a for a, _ in busy if a not in planned]
        items = tuple(ctx.results[a] for a in dict.fromkeys(order) if a in ctx.results)
        return ApplyResult(items, recovered, ctx.converged and error is None, self.stop.is_set(), started, _now(), error)

    # --- bookkeeping ------------------------------------------------------------------------------

    def _source(self, address: str) -> Source:
        res = self.regs.get(address) or self.instrs.get(address)
        return res.source if res is not None else _UNKNOWN_SOURCE

    def _record(self, ctx: _Run, address: str, status: ItemStatus, message: str, ref: str | None = None) -> None:
        action = (Action.UPDATE if address.startswith("SleeveRegistration/") else Action.CREATE).value
        item = ItemResult(address, action, status, message, self._source(address), ref)
        with ctx.lock:
            ctx.results[address] = item
        self.progress("item", f"{status.value} {address}")

    def _end_unfinished(self, address: str, ctx: _Run, why: str) -> None:
        if address in ctx.sent:
            self._record(ctx, address, ItemStatus.UNKNOWN, f"apply stopped after this was sent ({why}); a rerun "
                                                           "reads live state before sending anything")
        else:
            self._record(ctx, address, ItemStatus.SKIPPED, f"not sent: {why}")

    def _guarded(self, work: Callable[[Submission, _Run], None], sub: Submission, ctx: _Run) -> None:
        """Run one submission's work; whatever escapes ends its items, reported."""
        try:
            work(sub, ctx)
        except Exception as e:
            why = f"{type(e).__name__}: {bounded(e)}"
            for a in sub.items:
                if a not in ctx.results:
                    self._end_unfinished(a, ctx, why)

    # --- Orion ------------------------------------------------------------------------------------

    def _orion_wave(self, stage: OrionWave, ctx: _Run) -> None:
        for p in stage.track:
            for a in p.addresses:
                ctx.tracked[a] = p
        closed = self.window_guard("orion") if stage.batches else None
        if closed:   # a wave that would start outside its window is not started
            for s in stage.batches:
                for a in s.items:
                    self._record(ctx, a, ItemStatus.SKIPPED, closed)
            stage = OrionWave((), stage.track, stage.parallelism)
        with ThreadPoolExecutor(max(1, len(stage.track)), thread_name_prefix="orion-track") as trackers, \
                ThreadPoolExecutor(max(1, stage.parallelism), thread_name_prefix="orion-batch") as pool:
            tracked = [trackers.submit(self._track, p, ctx) for p in stage.track]
            own = [pool.submit(self._guarded, self._run_batch, s, ctx) for s in stage.batches]
            for f in own + tracked:
                f.result()

    def _track(self, pending: PendingBatch, ctx: _Run) -> None:
        """An earlier run's batch: poll it to its end like one of ours (never resubmit it)."""
        deadline = self.clock() + self.settings.poll_timeout
        try:
            ends = [self.evidence.poll(b, deadline, interruptible=True) for b in pending.batch_ids]
        except ApiError as e:
            self.progress("batch", f"tracking {pending.evidence}: {bounded(e, 120)}")
            return
        if any(e == "timeout" for e in ends):
            self.journal.batch_state(pending.local_id, BatchState.TIMED_OUT,
                                     batch_id=pending.batch_ids[0] if len(pending.batch_ids) == 1 else None,
                                     detail="still processing at the end of another run's poll timeout")
            return
        how = ", ".join(f"batch {b} " + (e["status"] if isinstance(e, dict) else "unknown to Orion (404)")
                        for b, e in zip(pending.batch_ids, ends))
        state = BatchState.ENDED if len(pending.batch_ids) == 1 else BatchState.RESOLVED
        self.journal.batch_state(pending.local_id, state, detail=how)
        with ctx.lock:
            ctx.tracked_ended[pending.local_id] = how
        self.progress("batch", f"{how} (from an earlier run)")

    def _run_batch(self, sub: Submission, ctx: _Run) -> None:
        items = [self.regs[a] for a in sub.items]
        if self.stop.is_set():
            for a in sub.items:
                self._record(ctx, a, ItemStatus.SKIPPED, "not sent: apply was interrupted")
            return
        held = {a for e in self.journal.open_batches() for a in e.addresses} & set(sub.items)
        if held:  # the plan never includes these; this guard makes it the journal's promise too
            for a in sub.items:
                self._record(ctx, a, ItemStatus.SKIPPED, "not sent: the journal holds an open batch for "
                                                         f"{', '.join(sorted(held))}; a registration is never in two batches")
            return
        local_id = uuid.uuid4().hex
        self.journal.batch_submitting(ctx.run_id, local_id, sub.items, [r.registration_id for r in items])
        with ctx.lock:
            ctx.sent.update(sub.items)
            ctx.open_batches.add(local_id)
        try:
            batch_id = self.vendors.orion.submit_batch(sub.body)
        except Exception as e:
            if is_refusal(e):
                self.journal.batch_state(local_id, BatchState.REFUSED, detail=bounded(e))
                with ctx.lock:
                    ctx.open_batches.discard(local_id)
                for a in sub.items:
                    self._record(ctx, a, ItemStatus.FAILED, f"Orion refused the batch: {bounded(e)}")
                return
            self.journal.batch_state(local_id, BatchState.IN_DOUBT, detail=bounded(e))
            self._batch_in_doubt(sub, items, local_id, e, ctx)
            return
        self.journal.batch_state(local_id, BatchState.SUBMITTED, batch_id=batch_id)
        self.progress("batch", f"submitted batch {batch_id} ({len(items)} registrations)")
        self._finish_batch(items, local_id, batch_id, self.clock() + self.settings.poll_timeout, ctx)

    def _finish_batch(self, items, local_id: str, batch_id: int, deadline: float, ctx: _Run) -> None:
        ref = f"batch {batch_id}"
        status = self.evidence.poll(batch_id, deadline)
        if status == "timeout":
            self.journal.batch_state(local_id, BatchState.TIMED_OUT, batch_id=batch_id, detail="poll timeout")
            for r in items:
                self._record(ctx, r.address, ItemStatus.UNKNOWN,
                             f"batch {batch_id} had not ended after {self.settings.poll_timeout:g} s; a rerun keeps "
                             "tracking this batch id instead of resubmitting", ref)
            return
        if status == "gone":
            self.journal.batch_state(local_id, BatchState.RESOLVED, batch_id=batch_id, detail="404 on its status")
            for r in items:
                self._record(ctx, r.address, ItemStatus.UNKNOWN, f"Orion answers 404 for batch {batch_id}, which it "
                                                                 "accepted; a rerun reads live state and plans again", ref)
            return
        unreadable = None
        try:
            errors = self.vendors.orion.batch_errors(batch_id) if status.get("errorCount") else []
        except ApiError as e:
            errors, unreadable = [], str(e)
        self.journal.batch_state(local_id, BatchState.ENDED, batch_id=batch_id, detail=str(status.get("status")))
        if status.get("correlationId"):   # what Orion's support asks for; logged with every item of the batch
            ref = f"batch {batch_id}, correlationId {bounded(status['correlationId'], 80)}"
        with ctx.lock:
            ctx.open_batches.discard(local_id)
        self.progress("batch", f"batch {batch_id} {bounded(status.get('status'), 40)}")
        self._classify(items, batch_id, str(status.get("status")), status.get("message"), errors, ref, ctx, unreadable)

    def _batch_in_doubt(self, sub: Submission, items, local_id: str, e: Exception, ctx: _Run) -> None:
        """The POST's answer was lost: look for the batch; track it if found; never send it again."""
        self.progress("batch", f"a batch of {len(items)} was sent but its answer was lost; looking for it")
        entry = self.journal.batch(local_id)
        ev = self.evidence.await_batch_evidence(entry)
        lost = f"the batch was sent but its answer was lost ({bounded(e, 160)})"
        if ev.kind != EvidenceKind.NONE:
            self.progress("batch", f"the batch whose answer was lost was {ev.detail}")
        if ev.kind == EvidenceKind.FOUND and len(ev.batch_ids) == 1:
            self.journal.batch_state(local_id, BatchState.SUBMITTED, batch_id=ev.batch_ids[0], detail=ev.detail)
            self._finish_batch(items, local_id, ev.batch_ids[0], entry.submitted_epoch + self.settings.poll_timeout, ctx)
            return
        if ev.kind == EvidenceKind.EDITED:
            self.journal.batch_state(local_id, BatchState.RESOLVED, detail=ev.detail)
            with ctx.lock:
                ctx.open_batches.discard(local_id)
            self._classify(items, 0, "(answer lost; registrations edited since)", None, [], None, ctx)
            return
        if ev.kind in (EvidenceKind.NOT_LISTED, EvidenceKind.POLL_TIMEOUT):
            self.journal.batch_state(local_id, BatchState.RESOLVED, detail=ev.detail)
        for r in items:
            self._record(ctx, r.address, ItemStatus.UNKNOWN, f"{lost}; {ev.detail or 'no evidence yet'}. It is never "
                                                             "sent again blindly: a rerun resolves it from Orion first")

    def _classify(self, items, batch_id: int, status: str, message, errors: list[dict], ref, ctx: _Run,
                  errors_unreadable: str | None = None) -> None:
        try:
            live = self.vendors.orion.list_with_sleeves([r.registration_id for r in items])
        except ApiError as e:
            for r in items:
                self._record(ctx, r.address, ItemStatus.UNKNOWN,
                             f"batch {batch_id} ended {status}, but re-reading its registrations failed: {bounded(e)}", ref)
            return
        hard = [e for e in errors if e.get("severity") == "Error"]  # warnings never fail an item
        for reg in items:
            current = live.get(reg.registration_id)
            matches = None if current is None else not diff_registration(reg, current, self.settings.ignore).changed
            prefix = f"registrationId {reg.registration_id}:"
            hint = next((str(e["errorMessage"]).split(":", 1)[1].strip() for e in hard
                         if str(e.get("errorMessage", "")).startswith(prefix)), None)
            outcome, text = batch_item_outcome(batch_id=batch_id, batch_status=status, matches_now=matches,
                                               error_hint=hint, batch_message=message,
                                               batch_errors=tuple(str(e.get("errorMessage")) for e in hard),
                                               errors_unreadable=errors_unreadable)
            self._record(ctx, reg.address, outcome, text, ref)

    # --- the gate ---------------------------------------------------------------------------------

    def _gate(self, stage: Gate, ctx: _Run) -> None:
        tracked_open = {p.local_id for p in ctx.tracked.values()} - set(ctx.tracked_ended)
        if self.stop.is_set():
            ctx.gate = "not sent: apply was interrupted before the SEI wave"
        elif ctx.open_batches or tracked_open:
            parts = []
            if ctx.open_batches:
                parts.append(f"{len(ctx.open_batches)} of this run's Orion batch(es)")
            if tracked_open:
                parts.append(f"{len(tracked_open)} batch(es) from an earlier run")
            ctx.gate = (f"not sent: {' and '.join(parts)} have not ended, and SEI requests start only after every "
                        "Orion batch has ended; rerun apply")

    # --- SEI --------------------------------------------------------------------------------------

    def _sei_wave(self, stage: SeiWave, ctx: _Run) -> None:
        ctx.gate = ctx.gate or self.window_guard("sei")   # the window may have closed during the Orion wave
        if ctx.gate:
            for s in stage.tickets:
                self._record(ctx, s.items[0], ItemStatus.SKIPPED, ctx.gate)
            return
        with ThreadPoolExecutor(max(1, self.settings.parallelism), thread_name_prefix="sei-ticket") as pool:
            for f in [pool.submit(self._guarded, self._send_ticket, s, ctx) for s in stage.tickets]:
                f.result()

    def _send_ticket(self, sub: Submission, ctx: _Run) -> None:
        address = sub.items[0]
        tid = self.instrs[address].ticket_id
        ref = f"ticket {tid}"

        def done(status: ItemStatus, message: str) -> None:
            self._record(ctx, address, status, message, ref)

        if self.stop.is_set():
            return done(ItemStatus.SKIPPED, "not sent: apply was interrupted")
        for attempt in range(1, MAX_TICKET_SENDS + 1):
            why = self.journal.why_not_send(tid)
            if why:
                return done(ItemStatus.UNKNOWN if address in ctx.sent else ItemStatus.SKIPPED, f"not sent: {why}")
            self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.SENDING)
            with ctx.lock:
                ctx.sent.add(address)
            try:
                self.vendors.sei.submit_ticket(sub.body["data"])
            except Exception as e:
                exists = isinstance(e, TicketExistsError)
                if is_refusal(e):
                    self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.REFUSED, bounded(e))
                    return done(ItemStatus.FAILED, f"SEI refused the instruction: {bounded(e)}")
                event = TicketEvent.EXISTS if exists else TicketEvent.IN_DOUBT
                self.journal.ticket_event(ctx.run_id, tid, address, event, bounded(e))
                verdict = self.evidence.settle_ticket(tid, self.journal.ticket(tid).last_send_epoch)
                if verdict is None:
                    return done(ItemStatus.UNKNOWN, f"the answer was lost ({bounded(getattr(e, 'status', None) or 'no answer')}) "
                                                    "and reading the ticket back failed; a rerun reads it back before "
                                                    "any re-send")
                if verdict.kind == VerdictKind.MATCH:
                    self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.CONFIRMED, "read back")
                    return done(ItemStatus.APPLIED, "already at SEI with the same values (409 on send)" if exists
                                else "the answer was lost, but the read-back shows SEI has it")
                if verdict.kind == VerdictKind.DIFFERS:
                    self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.CONFLICT, verdict.detail)
                    return done(ItemStatus.FAILED, f"SEI holds this tradeTicketId with other values ({verdict.detail}); "
                                                   "a ticket cannot change")
                if exists:
                    return done(ItemStatus.UNKNOWN, "SEI answered 409 but does not show the ticket; it is not sent again")
                self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.ABSENT_SETTLED, verdict.detail)
                if attempt == MAX_TICKET_SENDS:
                    return done(ItemStatus.UNKNOWN, f"sent {attempt} times without an answer, and SEI does not show it "
                                                    f"({verdict.detail}); a rerun plans it again")
                self.progress("poll", f"{address}: {verdict.detail}; sending it again")
                continue
            self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.SENT)
            return done(ItemStatus.APPLIED, "accepted by SEI")

    # --- confirm ----------------------------------------------------------------------------------

    def _confirm(self, stage: Confirm, ctx: _Run) -> None:
        """A fresh read: every applied item, and everything earlier runs left in doubt, must match."""
        addresses = list(dict.fromkeys(list(stage.addresses) + [a for a, _ in stage.busy]))
        regs = [self.regs[a] for a in addresses if a in self.regs]
        instrs = [self.instrs[a] for a in addresses if a in self.instrs]
        try:
            live = read_live_state(self.vendors, regs, instrs, self.settings, missing_ok=True)
        except (ApiError, LiveStateError) as e:
            for a in stage.addresses:
                i = ctx.results.get(a)
                if i is not None and i.status is ItemStatus.APPLIED:
                    self._record(ctx, a, ItemStatus.UNKNOWN, f"{i.message}; the confirming read failed: {bounded(e)}",
                                 i.reference)
            ctx.converged = False
            return

        def matches(a: str) -> bool:
            if a in self.regs:
                current = live.registrations.get(self.regs[a].registration_id)
                return current is not None and not diff_registration(self.regs[a], current, self.settings.ignore).changed
            if a in self.instrs:
                rows = live.tickets.get(self.instrs[a].ticket_id, [])
                return bool(rows) and not diff_instruction(self.instrs[a], rows, self.settings.ignore).conflict
            return False

        for a in stage.addresses:
            i = ctx.results.get(a)
            if i is not None and i.status is ItemStatus.APPLIED and not matches(a):
                self._record(ctx, a, ItemStatus.UNKNOWN, f"{i.message}, but a fresh read does not match the manifest",
                             i.reference)
        for a, why in stage.busy:
            pending = ctx.tracked.get(a)
            ended = ctx.tracked_ended.get(pending.local_id) if pending else None
            if ended and matches(a):
                self._record(ctx, a, ItemStatus.APPLIED, f"applied by an earlier run's batch ({ended})")
            elif ended:
                self._record(ctx, a, ItemStatus.FAILED, f"an earlier run's batch ended ({ended}) but the registration "
                                                        "does not match its manifest; rerun apply to plan it again")
            elif a in self.instrs and why.startswith("sent by an earlier run") and matches(a):
                self._record(ctx, a, ItemStatus.APPLIED, "sent by an earlier run; SEI has it")
            else:
                self._record(ctx, a, ItemStatus.UNKNOWN, why)
        ctx.converged = all(i.status is ItemStatus.APPLIED for i in ctx.results.values())
