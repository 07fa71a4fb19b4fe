"""The Orion wave: this plan's batches, `parallelism` at a time, and earlier runs' batches tracked beside them.

Each batch's registrations are read fresh (bodies.py) and claimed (state/claims.py) before it takes a
slot, journaled before it is sent, polled until `isDone` (apply/polling.py), its /Errors read, and its
registrations re-read to decide per item. `parallelism` is the number of batches at Orion at once (a
slot from the POST to the batch's end); the fresh reads and claims of the next batches and the re-reads
of ended ones run beside them, on workers of their own, so the client's work overlaps the vendor's. A
fresh read that waited more than FRESH_FOR_SECONDS for its slot (behind slow or stuck batches) is read
again: the window for a lost update stays seconds long. A batch whose answer was lost is never
resubmitted: it is looked for (recovery.Evidence) and tracked if found.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from reconciler.apply.bodies import fresh_bodies
from reconciler.apply.context import Kit, RunContext
from reconciler.apply.outcomes import ItemStatus, batch_item_outcome, is_refusal
from reconciler.apply.parking import drive
from reconciler.apply.recovery import BatchEvidence, BatchPoll, EvidenceKind, PollEnd
from reconciler.errors import ApiError
from reconciler.escaping import bounded
from reconciler.model import DesiredRegistration, Submission
from reconciler.plan.diff import diff_registration
from reconciler.plan.stages import OrionWave, PendingBatch
from reconciler.state.journal import BatchEntry, BatchState
from reconciler.vendors.orion import BatchError

__all__ = ["FRESH_FOR_SECONDS", "BatchWave"]

FRESH_FOR_SECONDS = 5.0  # the longest a batch's fresh read may wait for its slot before it is read again


class BatchWave:
    def __init__(self, kit: Kit):
        self.kit = kit
        self.vendors, self.journal, self.settings, self.claims = kit.vendors, kit.journal, kit.settings, kit.claims
        self.evidence, self.stop = kit.evidence, kit.stop
        self.progress, self.clock = kit.progress, kit.clock

    def run(self, stage: OrionWave, ctx: RunContext) -> None:
        for p in stage.track:
            for a in p.addresses:
                ctx.tracked[a] = p
        closed = self.kit.window_guard("orion") if stage.batches else None
        if closed:  # a wave that would start outside its window is not started
            for s in stage.batches:
                for a in s.items:
                    self.kit.record(ctx, a, ItemStatus.SKIPPED, closed)
            stage = OrionWave((), stage.track, stage.parallelism)
        # twice the workers of the slots: while `parallelism` batches are at Orion, others read the next
        # batches fresh and read back the batches that just ended (that work is the client's, not the vendor's)
        self._slots = threading.BoundedSemaphore(max(1, stage.parallelism))
        with (
            ThreadPoolExecutor(max(1, len(stage.track)), thread_name_prefix="orion-track") as trackers,
            ThreadPoolExecutor(2 * max(1, stage.parallelism), thread_name_prefix="orion-batch") as pool,
        ):
            tracked = [trackers.submit(self._track, p, ctx) for p in stage.track]
            own = [pool.submit(self.kit.guarded, self._run_batch, s, ctx) for s in stage.batches]
            for f in own + tracked:
                f.result()
        self.kit.parking.join()  # lost answers, looked for beside the wave: the gate waits for them

    def _track(self, pending: PendingBatch, ctx: RunContext) -> None:
        """An earlier run's batch: poll it to its end like one of ours (never resubmit it)."""
        deadline = self.clock() + self.settings.poll_timeout
        try:
            ends = [self.evidence.poll(b, deadline, interruptible=True) for b in pending.batch_ids]
        except ApiError as e:
            self.progress("state", f"tracking {pending.evidence}: {bounded(e, 120)}")
            return
        if any(e.end is PollEnd.TIMEOUT for e in ends):
            self.kit.batch_state(
                pending.local_id,
                BatchState.TIMED_OUT,
                batch_id=pending.batch_ids[0] if len(pending.batch_ids) == 1 else None,
                detail="still processing at the end of another run's poll timeout",
            )
            return
        how = ", ".join(e.describe(b) for b, e in zip(pending.batch_ids, ends))
        state = BatchState.ENDED if len(pending.batch_ids) == 1 else BatchState.RESOLVED
        self.kit.batch_state(pending.local_id, state, detail=how)
        with ctx.lock:
            ctx.tracked_ended[pending.local_id] = how
        self.progress("state", f"{how} (from an earlier run)")

    def _run_batch(self, sub: Submission, ctx: RunContext) -> None:
        if self.stop.is_set():
            for a in sub.items:
                self.kit.record(ctx, a, ItemStatus.SKIPPED, "not sent: apply was interrupted")
            return
        held = {a for e in self.journal.open_batches() for a in e.addresses} & set(sub.items)
        if held:  # the plan never includes these; this guard makes it the journal's promise too
            for a in sub.items:
                self.kit.record(
                    ctx,
                    a,
                    ItemStatus.SKIPPED,
                    "not sent: the journal holds an open batch for "
                    f"{', '.join(sorted(held))}; a registration is never in two batches",
                )
            return
        read_at, local_id = self.clock(), uuid.uuid4().hex
        # before the slot, the client's work overlaps the batches at Orion: the fresh read, and the claims (a
        # claim without a journaled batch is ours while we hold the workspace lock, stale once we do not)
        ready = self._claim_batch(self._fresh(sub, ctx), local_id, ctx)
        if not ready:
            return
        with self._slots:  # at Orion: from the POST to the batch's end, `parallelism` at a time
            if self.stop.is_set():
                self.claims.release(local_id)
                for d, _ in ready:
                    self.kit.record(ctx, d.address, ItemStatus.SKIPPED, "not sent: apply was interrupted")
                return
            if self.clock() - read_at > FRESH_FOR_SECONDS:  # a long wait for a slot: read them fresh again
                ready = self._fresh(self._narrowed(sub, ready), ctx)
                if not ready:
                    self.claims.release(local_id)
                    return
            sent = self._send_batch(sub, ready, local_id, ctx)
            if sent is None:
                return
            items, local_id, batch_id = sent
            polled = drive(
                self.evidence.poll_steps(batch_id, self.clock() + self.settings.poll_timeout), self.evidence.sleep
            )
        self._batch_polled(items, local_id, batch_id, polled, ctx)  # its errors and re-read: out of the slot

    @staticmethod
    def _narrowed(sub: Submission, ready: list[tuple[DesiredRegistration, dict]]) -> Submission:
        """`sub` for just the registrations still to send, each with the plan's fingerprint."""
        keep = {d.address for d, _ in ready}
        pairs = [(a, f) for a, f in zip(sub.items, sub.fingerprints or ("",) * len(sub.items)) if a in keep]
        return replace(sub, items=tuple(a for a, _ in pairs), fingerprints=tuple(f for _, f in pairs))

    def _send_batch(
        self, sub: Submission, ready: list[tuple[DesiredRegistration, dict]], local_id: str, ctx: RunContext
    ) -> tuple[list[DesiredRegistration], str, int] | None:
        """Journal and POST the bodies read fresh and claimed: (its registrations, local id, batch id) once
        Orion accepted it; None when it was refused, or its answer was lost (then it is looked for)."""
        items = [d for d, _ in ready]
        sub = replace(sub, items=tuple(d.address for d in items), body=[p for _, p in ready])
        self.journal.batch_submitting(ctx.run_id, local_id, sub.items, [r.registration_id for r in items])
        with ctx.lock:
            ctx.sent.update(sub.items)
            ctx.open_batches.add(local_id)
        try:
            batch_id = self.vendors.orion.submit_batch(sub.body)
        except Exception as e:
            if is_refusal(e):
                self.kit.batch_state(local_id, BatchState.REFUSED, detail=bounded(e))
                with ctx.lock:
                    ctx.open_batches.discard(local_id)
                for a in sub.items:
                    self.kit.record(ctx, a, ItemStatus.FAILED, f"Orion refused the batch: {bounded(e)}")
                return None
            self.kit.batch_state(local_id, BatchState.IN_DOUBT, detail=bounded(e))
            self._batch_in_doubt(sub, items, local_id, e, ctx)
            return None
        self.kit.batch_state(local_id, BatchState.SUBMITTED, batch_id=batch_id)
        self.progress("state", f"submitted batch {batch_id} ({len(items)} registrations)")
        return items, local_id, batch_id

    def _fresh(self, sub: Submission, ctx: RunContext) -> list[tuple[DesiredRegistration, dict]]:
        """The batch's registrations read fresh (apply/bodies.py): bodies for those unchanged since the
        plan; the stale ones end `failed`, named, and are not sent."""
        found = self.kit.planned(sub.items)
        items = []
        for address, planned in zip(sub.items, sub.fingerprints or ("",) * len(sub.items)):
            desired, plan_diff = found.get(address, (None, None))
            if isinstance(desired, DesiredRegistration):
                items.append((desired, planned, plan_diff))
            else:
                self.kit.record(ctx, address, ItemStatus.SKIPPED, "not sent: its declaration is no longer at hand")
        try:
            fresh = fresh_bodies(self.vendors.orion, items, self.settings.ignore)
        except ApiError as e:
            for desired, _, _ in items:
                self.kit.record(
                    ctx,
                    desired.address,
                    ItemStatus.SKIPPED,
                    f"not sent: reading it fresh just before its batch failed ({bounded(e)}); a rerun plans it again",
                )
            return []
        for address, why in fresh.stale:
            self.kit.record(ctx, address, ItemStatus.FAILED, why)
        for address in fresh.settled:
            self.kit.record(ctx, address, ItemStatus.APPLIED, "already as declared when read before its batch")
        if fresh.stale:
            self.progress("state", f"{len(fresh.stale)} registration(s) changed in Orion since the plan: not sent")
        return fresh.ready

    def _claim_batch(
        self, ready: list[tuple[DesiredRegistration, dict]], local_id: str, ctx: RunContext
    ) -> list[tuple[DesiredRegistration, dict]]:
        """Claim the batch's registrations; those another workspace has in flight are skipped, the rest go."""
        if not ready:
            return ready
        others = self.claims.claim(
            self.kit.orion_endpoint, "registration", local_id, [str(r.registration_id) for r, _ in ready]
        )
        if not others:
            return ready
        kept = []
        for r, payload in ready:
            held = others.get(str(r.registration_id))
            if held is None:
                kept.append((r, payload))
                continue
            self.kit.record(
                ctx,
                r.address,
                ItemStatus.SKIPPED,
                f"not sent: {held.why('registration', str(r.registration_id))}; a registration is never in two batches",
            )
        if not kept:
            self.claims.release(local_id)
        return kept

    def _batch_polled(
        self, items: list[DesiredRegistration], local_id: str, batch_id: int, polled: BatchPoll, ctx: RunContext
    ) -> None:
        ref = f"batch {batch_id}"
        if polled.end is PollEnd.TIMEOUT:
            self.kit.batch_state(local_id, BatchState.TIMED_OUT, batch_id=batch_id, detail="poll timeout")
            for r in items:
                self.kit.record(
                    ctx,
                    r.address,
                    ItemStatus.UNKNOWN,
                    f"batch {batch_id} had not ended after {self.settings.poll_timeout:g} s; a rerun keeps "
                    "tracking this batch id instead of resubmitting",
                    ref,
                )
            return
        if polled.end is PollEnd.GONE or polled.status is None:
            self.kit.batch_state(local_id, BatchState.RESOLVED, batch_id=batch_id, detail="404 on its status")
            for r in items:
                self.kit.record(
                    ctx,
                    r.address,
                    ItemStatus.UNKNOWN,
                    f"Orion answers 404 for batch {batch_id}, which it "
                    "accepted; a rerun reads live state and plans again",
                    ref,
                )
            return
        status = polled.status
        unreadable = None
        try:
            errors = self.vendors.orion.batch_errors(batch_id) if status.error_count else []
        except ApiError as e:
            errors, unreadable = [], str(e)
        self.kit.batch_state(local_id, BatchState.ENDED, batch_id=batch_id, detail=status.status)
        if status.correlation_id:  # what Orion's support asks for; logged with every item of the batch
            ref = f"batch {batch_id}, correlationId {bounded(status.correlation_id, 80)}"
        with ctx.lock:
            ctx.open_batches.discard(local_id)
        self._classify(items, batch_id, status.status, status.message, errors, ref, ctx, unreadable)

    def _batch_in_doubt(
        self, sub: Submission, items: list[DesiredRegistration], local_id: str, e: Exception, ctx: RunContext
    ) -> None:
        """The POST's answer was lost: look for the batch beside the wave (apply/parking.py), and track it if
        found; never send it again. This worker goes on to the next batch."""
        self.progress("state", f"a batch of {len(items)} was sent but its answer was lost; looking for it")
        entry = self.journal.batch(local_id)
        assert entry is not None  # journaled before it was sent
        lost = f"the batch was sent but its answer was lost ({bounded(e, 160)})"
        self.kit.park(
            self.evidence.batch_evidence_steps(entry),
            lambda ev: self._lost_batch_evidence(sub, items, entry, lost, ev, ctx),
            sub,
            ctx,
        )

    def _lost_batch_evidence(
        self,
        sub: Submission,
        items: list[DesiredRegistration],
        entry: BatchEntry,
        lost: str,
        ev: BatchEvidence,
        ctx: RunContext,
    ) -> None:
        local_id = entry.local_id
        if ev.kind != EvidenceKind.NONE:
            self.progress("state", f"the batch whose answer was lost was {ev.detail}")
        if ev.kind == EvidenceKind.FOUND and len(ev.batch_ids) == 1:
            batch_id = ev.batch_ids[0]
            self.kit.batch_state(local_id, BatchState.SUBMITTED, batch_id=batch_id, detail=ev.detail)
            self.kit.park(
                self.evidence.poll_steps(batch_id, entry.submitted_epoch + self.settings.poll_timeout),
                lambda polled: self._batch_polled(items, local_id, batch_id, polled, ctx),
                sub,
                ctx,
            )
            return
        if ev.kind == EvidenceKind.EDITED:
            self.kit.batch_state(local_id, BatchState.RESOLVED, detail=ev.detail)
            with ctx.lock:
                ctx.open_batches.discard(local_id)
            self._classify(items, 0, "(answer lost; registrations edited since)", None, [], None, ctx)
            return
        if ev.kind in (EvidenceKind.NOT_LISTED, EvidenceKind.POLL_TIMEOUT):
            self.kit.batch_state(local_id, BatchState.RESOLVED, detail=ev.detail)
        for r in items:
            self.kit.record(
                ctx,
                r.address,
                ItemStatus.UNKNOWN,
                f"{lost}; {ev.detail or 'no evidence yet'}. It is never "
                "sent again blindly: a rerun resolves it from Orion first",
            )

    def _classify(
        self,
        items: list[DesiredRegistration],
        batch_id: int,
        status: str,
        message: str | None,
        errors: list[BatchError],
        ref: str | None,
        ctx: RunContext,
        errors_unreadable: str | None = None,
    ) -> None:
        try:
            live = self.vendors.orion.list_with_sleeves([r.registration_id for r in items])
        except ApiError as e:
            for r in items:
                self.kit.record(
                    ctx,
                    r.address,
                    ItemStatus.UNKNOWN,
                    f"batch {batch_id} ended {status}, but re-reading its registrations failed: {bounded(e)}",
                    ref,
                )
            return
        hard = [e for e in errors if e.is_error]  # warnings never fail an item
        for reg in items:
            current = live.get(reg.registration_id)
            matches = None if current is None else not diff_registration(reg, current, self.settings.ignore).changed
            hint = next((e.detail for e in hard if e.registration_id == reg.registration_id), None)
            outcome, text = batch_item_outcome(
                batch_id=batch_id,
                batch_status=status,
                matches_now=matches,
                error_hint=hint,
                batch_message=message,
                batch_errors=tuple(e.message for e in hard),
                errors_unreadable=errors_unreadable,
            )
            self.kit.record(ctx, reg.address, outcome, text, ref)
