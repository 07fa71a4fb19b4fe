"""The gate and the SEI wave: one POST per missing trade instruction, never sent twice.

The gate holds every ticket until each Orion batch (this run's, and earlier runs' tracked beside
them) has ended. A ticket is POSTed only if the journal allows it (`why_not_send`) and its claim is
ours. After an ambiguous outcome it is read back over a settle window; it is sent again only if
every read-back, the last past the window, showed it absent, and at most once more.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from reconciler.apply.context import Kit, RunContext
from reconciler.apply.outcomes import ItemStatus, VerdictKind, is_refusal
from reconciler.errors import TicketExistsError
from reconciler.escaping import bounded
from reconciler.model import Submission
from reconciler.plan.stages import Gate, SeiWave
from reconciler.state.journal import TicketEvent

__all__ = ["MAX_TICKET_SENDS", "TicketWave"]

# A ticket is POSTed at most this many times in a run, the second only after read-backs over a whole
# settle window all showed SEI does not have the first.
MAX_TICKET_SENDS = 2


class TicketWave:
    def __init__(self, kit: Kit):
        self.kit = kit
        self.vendors, self.journal, self.settings, self.claims = kit.vendors, kit.journal, kit.settings, kit.claims
        self.evidence, self.instrs, self.stop, self.progress = kit.evidence, kit.instrs, kit.stop, kit.progress

    def gate(self, stage: Gate, ctx: RunContext) -> None:
        tracked_open = {p.local_id for p in ctx.tracked.values()} - set(ctx.tracked_ended)
        if self.stop.is_set():
            ctx.gate = "not sent: apply was interrupted before the SEI wave"
        elif ctx.open_batches or tracked_open:
            parts = []
            if ctx.open_batches:
                parts.append(f"{len(ctx.open_batches)} of this run's Orion batch(es)")
            if tracked_open:
                parts.append(f"{len(tracked_open)} batch(es) from an earlier run")
            ctx.gate = (
                f"not sent: {' and '.join(parts)} have not ended, and SEI requests start only after every "
                "Orion batch has ended; rerun apply"
            )

    def run(self, stage: SeiWave, ctx: RunContext) -> None:
        ctx.gate = ctx.gate or self.kit.window_guard("sei")  # the window may have closed during the Orion wave
        if ctx.gate:
            for s in stage.tickets:
                self.kit.record(ctx, s.items[0], ItemStatus.SKIPPED, ctx.gate)
            return
        with ThreadPoolExecutor(max(1, self.settings.parallelism), thread_name_prefix="sei-ticket") as pool:
            for f in [pool.submit(self.kit.guarded, self._send_ticket, s, ctx) for s in stage.tickets]:
                f.result()

    def _send_ticket(self, sub: Submission, ctx: RunContext) -> None:
        address = sub.items[0]
        tid = self.instrs[address].ticket_id
        ref = f"ticket {tid}"

        entry = self.journal.ticket_entry(tid)

        def done(status: ItemStatus, message: str) -> None:
            self.kit.record(ctx, address, status, message, ref)
            last = self.journal.ticket(tid)
            if last is not None and last.event in TicketEvent.STORED:  # for good: never sent again, by anyone
                self.claims.keep_stored(entry)
            elif last is None or last.event not in TicketEvent.OPEN:  # settled: others may send it (state/claims.py)
                self.claims.release(entry)

        if self.stop.is_set():
            return done(ItemStatus.SKIPPED, "not sent: apply was interrupted")
        for attempt in range(1, MAX_TICKET_SENDS + 1):
            why = self.journal.why_not_send(tid)
            if why:
                return done(ItemStatus.UNKNOWN if address in ctx.sent else ItemStatus.SKIPPED, f"not sent: {why}")
            held = self.claims.claim(self.kit.sei_endpoint, "ticket", entry, [str(tid)]).get(str(tid))
            if held is not None:
                return self.kit.record(
                    ctx, address, ItemStatus.SKIPPED, f"not sent: {held.why('ticket', str(tid))}", ref
                )
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
                sent = self.journal.ticket(tid)
                assert sent is not None  # its `sending` event was journaled just above
                verdict = self.evidence.settle_ticket(tid, sent.last_send_epoch)
                if verdict is None:
                    return done(
                        ItemStatus.UNKNOWN,
                        f"the answer was lost ({bounded(getattr(e, 'status', None) or 'no answer')}) "
                        "and reading the ticket back failed; a rerun reads it back before "
                        "any re-send",
                    )
                if verdict.kind == VerdictKind.MATCH:
                    self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.CONFIRMED, "read back")
                    return done(
                        ItemStatus.APPLIED,
                        "already at SEI with the same values (409 on send)"
                        if exists
                        else "the answer was lost, but the read-back shows SEI has it",
                    )
                if verdict.kind == VerdictKind.DIFFERS:
                    self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.CONFLICT, verdict.detail)
                    return done(
                        ItemStatus.FAILED,
                        f"SEI holds this tradeTicketId with other values ({verdict.detail}); a ticket cannot change",
                    )
                if exists:
                    return done(
                        ItemStatus.UNKNOWN, "SEI answered 409 but does not show the ticket; it is not sent again"
                    )
                self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.ABSENT_SETTLED, verdict.detail)
                if attempt == MAX_TICKET_SENDS:
                    return done(
                        ItemStatus.UNKNOWN,
                        f"sent {attempt} times without an answer, and SEI does not show it "
                        f"({verdict.detail}); a rerun plans it again",
                    )
                self.progress("poll", f"{address}: {verdict.detail}; sending it again")
                continue
            self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.SENT)
            return done(ItemStatus.APPLIED, "accepted by SEI")
