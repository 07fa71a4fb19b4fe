"""The gate and the SEI wave: one POST per missing trade instruction, never sent twice.

The gate holds every ticket until each Orion batch (this run's, and earlier runs' tracked beside
them) has ended. A ticket is POSTed only if the journal allows it (`why_not_send`) and its claim is
ours. After an ambiguous outcome it is read back over a settle window, parked beside the wave
(apply/parking.py) so the other tickets go on; it is sent again only if every read-back, the last past
the window, showed it absent, and at most once more.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from reconciler.apply.context import Kit, RunContext
from reconciler.apply.outcomes import ItemStatus, Verdict, VerdictKind, is_refusal
from reconciler.errors import TicketExistsError
from reconciler.escaping import bounded
from reconciler.model import Submission
from reconciler.plan.stages import Gate, SeiWave
from reconciler.state.claims import Held
from reconciler.state.journal import TicketEvent

__all__ = ["LAST_SEND_READS", "MAX_TICKET_SENDS", "TicketWave"]

# A ticket is POSTed at most this many times in a run, the second only after read-backs over a whole
# settle window all showed SEI does not have the first.
MAX_TICKET_SENDS = 2
# How long the last send's answer is looked for, when lost: it is not sent again in this run anyway, so the
# run does not spend a second settle window on it; still absent, it stays in doubt for a rerun to settle.
LAST_SEND_READS = 10.0


def _ticket_id(address: str) -> int:
    return int(address.split("/", 1)[1])  # TradeInstruction/<tradeTicketId>


class TicketWave:
    def __init__(self, kit: Kit):
        self.kit = kit
        self._held: dict[str, Held] = {}  # tickets another workspace holds: never sent by this run
        self.vendors, self.journal, self.settings, self.claims = kit.vendors, kit.journal, kit.settings, kit.claims
        self.evidence, self.stop, self.progress = kit.evidence, kit.stop, kit.progress

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
        # one claims transaction for the wave (one per ticket was a third of its time); the ticket's own
        # entry, as `why_not_send` and the journal name it, so a claim ends with its ticket's write
        ids = [_ticket_id(s.items[0]) for s in stage.tickets]
        self._held = self.claims.claim_each(
            self.kit.sei_endpoint, "ticket", [(self.journal.ticket_entry(t), str(t)) for t in ids]
        )
        with ThreadPoolExecutor(max(1, self.settings.parallelism), thread_name_prefix="sei-ticket") as pool:
            for f in [pool.submit(self.kit.guarded, self._send, s, ctx) for s in stage.tickets]:
                f.result()
        self.kit.parking.join()  # tickets in doubt, read back beside the wave: the run ends when they are settled

    def _send(self, sub: Submission, ctx: RunContext) -> None:
        self._attempt(sub, ctx, 1)

    def _done(
        self, sub: Submission, ctx: RunContext, status: ItemStatus, message: str, event: str | None = None
    ) -> None:
        """Record the ticket's outcome; its claim is released once it settled without SEI storing it. A
        stored ticket's claim stands for good (the journal says stored; the run's end makes it `stored:`).
        `event`: the journal's last event for it, when the caller just wrote it (else it is read)."""
        address = sub.items[0]
        tid = _ticket_id(address)
        self.kit.record(ctx, address, status, message, f"ticket {tid}")
        last = event or getattr(self.journal.ticket(tid), "event", None)
        if last is None or last not in TicketEvent.OPEN | TicketEvent.STORED:  # others may send it
            self.claims.release(self.journal.ticket_entry(tid))

    def _attempt(self, sub: Submission, ctx: RunContext, attempt: int) -> None:
        """One POST of the ticket, if the journal and the claims allow it. An answer in doubt parks the
        ticket's read-backs (apply/parking.py); the worker moves on to the next ticket."""
        address = sub.items[0]
        tid = _ticket_id(address)
        if self.stop.is_set():
            return self._done(sub, ctx, ItemStatus.SKIPPED, "not sent: apply was interrupted")
        why = self.journal.why_not_send(tid)
        if why:
            status = ItemStatus.UNKNOWN if address in ctx.sent else ItemStatus.SKIPPED
            return self._done(sub, ctx, status, f"not sent: {why}")
        held = self._held.get(str(tid))
        if held is not None:
            return self.kit.record(
                ctx, address, ItemStatus.SKIPPED, f"not sent: {held.why('ticket', str(tid))}", f"ticket {tid}"
            )
        self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.SENDING)
        with ctx.lock:
            ctx.sent.add(address)
        try:
            self.vendors.sei.submit_ticket(sub.body["data"])
        except Exception as e:
            if is_refusal(e):
                self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.REFUSED, bounded(e))
                return self._done(sub, ctx, ItemStatus.FAILED, f"SEI refused the instruction: {bounded(e)}")
            exists = isinstance(e, TicketExistsError)
            event = TicketEvent.EXISTS if exists else TicketEvent.IN_DOUBT
            self.journal.ticket_event(ctx.run_id, tid, address, event, bounded(e))
            sent = self.journal.ticket(tid)
            assert sent is not None  # its `sending` event was journaled just above
            lost = bounded(getattr(e, "status", None) or "no answer")
            self.progress("state", f"{address}: the answer was lost ({lost}); reading it back beside the wave")
            # the last send is never followed by another: its read-backs need not wait out a second
            # window, which would double the run's time in doubt; what they do not find, a rerun settles
            budget = min(LAST_SEND_READS, self.settings.settle / 4) if attempt == MAX_TICKET_SENDS else None
            self.kit.park(
                self.evidence.settle_ticket_steps(tid, sent.last_send_epoch, budget),
                lambda verdict: self._settled(sub, ctx, attempt, exists, lost, verdict),
                sub,
                ctx,
            )
            return None
        self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.SENT)
        return self._done(sub, ctx, ItemStatus.APPLIED, "accepted by SEI", TicketEvent.SENT)

    def _settled(
        self, sub: Submission, ctx: RunContext, attempt: int, exists: bool, lost: str, verdict: Verdict | None
    ) -> None:
        """What the read-backs of a ticket in doubt found; the journal's rules decide, as they would inline."""
        address = sub.items[0]
        tid = _ticket_id(address)
        if verdict is None:
            return self._done(
                sub,
                ctx,
                ItemStatus.UNKNOWN,
                f"the answer was lost ({lost}) and reading the ticket back failed; a rerun reads it back before "
                "any re-send",
            )
        if verdict.kind == VerdictKind.MATCH:
            self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.CONFIRMED, "read back")
            return self._done(
                sub,
                ctx,
                ItemStatus.APPLIED,
                "already at SEI with the same values (409 on send)"
                if exists
                else "the answer was lost, but the read-back shows SEI has it",
            )
        if verdict.kind == VerdictKind.DIFFERS:
            self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.CONFLICT, verdict.detail)
            return self._done(
                sub,
                ctx,
                ItemStatus.FAILED,
                f"SEI holds this tradeTicketId with other values ({verdict.detail}); a ticket cannot change",
            )
        if exists:
            return self._done(
                sub, ctx, ItemStatus.UNKNOWN, "SEI answered 409 but does not show the ticket; it is not sent again"
            )
        if verdict.kind == VerdictKind.PENDING:  # in doubt still: the journal keeps it so; a rerun reads it back
            return self._done(
                sub,
                ctx,
                ItemStatus.UNKNOWN,
                f"sent {attempt} times, the last answer lost ({lost}), and {verdict.detail}; it is not sent again "
                "in this run, and a rerun reads it back before any re-send",
            )
        self.journal.ticket_event(ctx.run_id, tid, address, TicketEvent.ABSENT_SETTLED, verdict.detail)
        if attempt == MAX_TICKET_SENDS:
            return self._done(
                sub,
                ctx,
                ItemStatus.UNKNOWN,
                f"sent {attempt} times without an answer, and SEI does not show it ({verdict.detail}); "
                "a rerun plans it again",
            )
        self.progress("state", f"{address}: {verdict.detail}; sending it again")
        return self._attempt(sub, ctx, attempt + 1)
