"""Evidence for writes in doubt, and the Recover stage that resolves an earlier run's leftovers.

A write whose answer was lost is never sent again on a hunch. It is resolved only by evidence:

- a **batch** without its id: found in Orion's BatchProcessing list (created since we journaled it,
  of its size, not one we know) and tracked until it ends; or missing from that list for a whole
  settle window (the server never created it); or, where the list cannot be read, every one of its
  registrations edited after we sent it, or the poll timeout passed since;
- a **ticket**: read back, again and again over a settle window measured from its last send. Seen
  once: it is stored. Absent in every read, the last one past the window: it may be planned again.

Until then its resources stay out of every plan, and the run reports them `unknown` (exit 3).
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from reconciler.apply.outcomes import Verdict, VerdictKind, ticket_verdict
from reconciler.apply.parking import Parking, Steps, drive
from reconciler.apply.polling import POLL_FIRST, POLL_GROWTH, POLL_MAX, next_poll
from reconciler.config import Settings
from reconciler.errors import ApiAuthError, ApiError, NotFoundError
from reconciler.escaping import bounded
from reconciler.fields import BATCH_LIST_SKEW_SECONDS, parse_vendor_time
from reconciler.model import DesiredInstruction
from reconciler.plan.desired import Declarations
from reconciler.plan.stages import PendingBatch, Recover
from reconciler.state.journal import BatchEntry, BatchState, Journal, TicketEvent
from reconciler.vendors import Vendors
from reconciler.vendors.orion import BatchStatus

__all__ = ["BatchEvidence", "BatchPoll", "Evidence", "EvidenceKind", "PollEnd", "in_doubt_view"]

READ_BACKS = 4  # read-backs spread over a settle window, after the first one


class EvidenceKind(enum.StrEnum):
    """What the vendors show of a batch whose answer was lost."""

    FOUND = "found"  # Orion's BatchProcessing list holds it: track that batch
    NOT_LISTED = "not-listed"  # absent from the list over the whole settle window
    EDITED = "edited"  # every registration was edited after it was sent
    POLL_TIMEOUT = "poll-timeout"  # it never ended within the poll timeout
    NONE = "none"  # nothing yet


class PollEnd(enum.StrEnum):
    """How polling a batch ended."""

    ENDED = "ended"  # isDone: `status` says how
    GONE = "gone"  # Orion answers 404 for the id: not processing, and never will be
    TIMEOUT = "timeout"  # the deadline came first (or, for an earlier run's batch, Ctrl-C)


@dataclass(frozen=True)
class BatchPoll:
    end: PollEnd
    status: BatchStatus | None = None  # set when the batch ended

    def describe(self, batch_id: int) -> str:
        return f"batch {batch_id} " + (self.status.status if self.status else "unknown to Orion (404)")


@dataclass(frozen=True)
class BatchEvidence:
    kind: EvidenceKind
    batch_ids: tuple[int, ...] = ()
    detail: str = ""


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def in_doubt_view(journal: Journal | None) -> Recover:
    """What `plan` shows and keeps out, read from the journal alone (no network, no lock)."""
    if journal is None:
        return Recover()
    busy = [
        (a, f"an earlier apply's {d.kind} write ({d.state} since {d.since}) is in doubt; apply resolves it first")
        for d in journal.in_doubt()
        for a in d.addresses
    ]
    return Recover(busy=tuple(busy))


class Evidence:
    """Reads the vendors for evidence; shared by the Recover stage and by this run's own doubts."""

    def __init__(
        self,
        vendors: Vendors,
        journal: Journal,
        settings: Settings,
        instructions: Declarations | dict[str, DesiredInstruction],
        *,
        progress: Callable[[str, str], None],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        interrupted: Callable[[], bool] = lambda: False,
    ):
        self.vendors, self.journal, self.settings = vendors, journal, settings
        self.instructions = instructions
        self.progress, self.sleep, self.clock = progress, sleep, clock
        self.interrupted = interrupted  # recovery's waits end early on Ctrl-C

    def parking(self, name: str) -> Parking:
        """A schedule for this evidence's parked tasks, on its clock (a unit test's fake clock too)."""
        fake = None if self.sleep is time.sleep else self.sleep
        return Parking(max(4, self.settings.parallelism), name=name, clock=self.clock, sleep=fake)

    # --- batches ----------------------------------------------------------------------------------

    def batch_evidence(self, entry: BatchEntry) -> BatchEvidence:
        """One look for evidence of what became of a batch whose id we never learned."""
        now = self.clock()
        try:
            rows = self.vendors.orion.list_batches(
                _iso(entry.submitted_epoch - BATCH_LIST_SKEW_SECONDS), _iso(now + BATCH_LIST_SKEW_SECONDS)
            )
        except ApiAuthError:
            raise
        except ApiError as e:
            listed, why = None, f"the BatchProcessing list cannot be read ({bounded(e, 120)})"
        else:
            known = self.journal.known_batch_ids()
            user = self.vendors.orion.settings.username
            listed = [
                r.id
                for r in rows
                if r.id not in known
                and r.total_items == len(entry.registration_ids)
                and (not user or r.created_by in (None, user))
            ]
        if listed:
            return BatchEvidence(
                EvidenceKind.FOUND,
                tuple(listed),
                f"found in Orion's BatchProcessing list as batch {', '.join(map(str, listed))}",
            )
        if listed is not None:
            if now - entry.submitted_epoch >= self.settings.settle:
                return BatchEvidence(
                    EvidenceKind.NOT_LISTED,
                    detail=f"absent from Orion's BatchProcessing list {self.settings.settle:g} s after it was sent",
                )
            return BatchEvidence(EvidenceKind.NONE, detail="not (yet) in Orion's BatchProcessing list")
        try:
            live = self.vendors.orion.list_with_sleeves(list(entry.registration_ids))
        except ApiError:
            live = {}
        edited = [parse_vendor_time(live.get(rid, {}).get("editedDate")) for rid in entry.registration_ids]
        if edited and all(t is not None and t > entry.submitted_epoch for t in edited):
            return BatchEvidence(EvidenceKind.EDITED, detail=f"{why}; every registration was edited after it was sent")
        if now - entry.submitted_epoch >= self.settings.poll_timeout:
            return BatchEvidence(
                EvidenceKind.POLL_TIMEOUT,
                detail=f"{why}; the poll timeout ({self.settings.poll_timeout:g} s) has passed since it was sent",
            )
        return BatchEvidence(EvidenceKind.NONE, detail=why)

    def await_batch_evidence(self, entry: BatchEntry) -> BatchEvidence:
        """Look again until there is evidence or the settle window since the send has passed."""
        return drive(self.batch_evidence_steps(entry), self.sleep)

    def batch_evidence_steps(self, entry: BatchEntry) -> Steps[BatchEvidence]:
        """`await_batch_evidence` as a parkable task (apply/parking.py)."""
        deadline = entry.submitted_epoch + self.settings.settle
        delay = POLL_FIRST
        while True:
            ev = self.batch_evidence(entry)
            if ev.kind != EvidenceKind.NONE or self.clock() >= deadline or self.interrupted():
                return ev
            self.progress(
                "poll",
                f"looking for the batch of {len(entry.addresses)} registration(s) sent at "
                f"{entry.submitted_at}: {ev.detail}",
            )
            yield min(delay, max(0.0, deadline - self.clock()) + 0.01)
            delay = min(delay * POLL_GROWTH, POLL_MAX)

    def poll(self, batch_id: int, deadline: float, *, interruptible: bool = False) -> BatchPoll:
        """How the batch ended (with its status once isDone), or that Orion does not know the id (404), or
        that the deadline came first.

        This run's own batches are polled to the end even after Ctrl-C (that is the drain); an earlier
        run's (`interruptible`) stop being waited for, and stay journaled.
        """
        return drive(self.poll_steps(batch_id, deadline, interruptible=interruptible), self.sleep)

    def poll_steps(self, batch_id: int, deadline: float, *, interruptible: bool = False) -> Steps[BatchPoll]:
        """`poll` as a parkable task. Progress says when the batch's state changes, not at every poll."""
        delay, sent, done_before = POLL_FIRST, self.clock(), 0
        seen: str | None = None
        yield POLL_FIRST  # not at once: a batch just accepted is New
        while True:
            status = None
            try:
                status = self.vendors.orion.batch_status(batch_id)
                self.progress(
                    "state" if status.status != seen else "poll",  # a log line when the state changes, only
                    f"batch {batch_id} {bounded(status.status, 40)} {status.items_completed}/{status.total_items}",
                )
                seen = status.status
                if status.is_done:
                    return BatchPoll(PollEnd.ENDED, status)
            except NotFoundError:
                return BatchPoll(PollEnd.GONE)  # not processing here, and never will be: fail fast
            except ApiAuthError:
                raise  # credentials, not the batch: stop the run, say which
            except ApiError as e:
                self.progress("poll", f"batch {batch_id}: status not readable ({bounded(e, 120)}); retrying")
            if self.clock() + delay > deadline or (interruptible and self.interrupted()):
                return BatchPoll(PollEnd.TIMEOUT)
            yield min(next_poll(self.clock() - sent, delay, status, done_before), deadline - self.clock())
            if status is not None:
                done_before = max(done_before, status.items_completed or 0)
            delay = min(delay * POLL_GROWTH, POLL_MAX)

    # --- tickets ----------------------------------------------------------------------------------

    def settle_ticket(self, ticket_id: int, last_send_epoch: float) -> Verdict | None:
        """Read the ticket back until it shows, or the settle window since its last send has passed."""
        return drive(self.settle_ticket_steps(ticket_id, last_send_epoch), self.sleep)

    def settle_ticket_steps(self, ticket_id: int, epoch: float, budget: float | None = None) -> Steps[Verdict | None]:
        """Parkable read-backs over the settle window since the last send. None: SEI cannot be read (still
        in doubt). `absent` only if every read-back, the last at or after the window's end, showed it
        absent; `pending` if a `budget` (s) shorter than the window's rest ran out first (in doubt)."""
        found = self.instructions.get(f"TradeInstruction/{ticket_id}")
        desired = found if isinstance(found, DesiredInstruction) else None  # None: presence decides
        deadline = epoch + self.settings.settle
        give_up = self.clock() + budget if budget is not None and budget < deadline - self.clock() else None
        step = self.settings.settle / READ_BACKS
        while True:
            try:
                rows = self.vendors.sei.get_ticket(ticket_id)
            except ApiAuthError:
                raise
            except ApiError:
                return None
            verdict = ticket_verdict(desired, rows, self.settings.ignore)
            if verdict.kind != VerdictKind.ABSENT:
                return verdict
            now = self.clock()
            if now >= deadline:
                return Verdict(VerdictKind.ABSENT, f"absent in every read-back over {self.settings.settle:g} s")
            if give_up is not None and now >= give_up:
                return Verdict(VerdictKind.PENDING, f"not at SEI in read-backs over {budget:g} s")
            if self.interrupted():
                return None
            self.progress(
                "poll",
                f"TradeInstruction/{ticket_id}: not at SEI yet; reading it back again "
                f"until {self.settings.settle:g} s after the send",
            )
            yield min(step, (give_up or deadline) - now) + 0.01

    # --- the Recover stage ------------------------------------------------------------------------

    def recover(self) -> Recover:
        """Resolve what earlier runs left in doubt, before anything is planned. Every open write is
        looked into at once (apply/parking.py): ten tickets in doubt cost one settle window, not ten."""
        notes: list[str] = []
        busy: list[tuple[str, str]] = []
        pending: list[PendingBatch] = []
        open_batches = self.journal.open_batches()
        open_tickets = self.journal.open_tickets()
        lost = [e for e in open_batches if e.batch_id is None]
        if lost or open_tickets:
            self.progress(
                "state",
                f"{len(lost)} batch(es) and {len(open_tickets)} ticket(s) sent by an earlier run without an answer: "
                f"looking for them (at most {self.settings.settle:g} s after each was sent)",
            )
        found: dict[str, BatchEvidence] = {}
        verdicts: dict[int, Verdict | None] = {}
        failures: list[BaseException] = []
        with self.parking("recover") as parking:
            for entry in lost:
                parking.park(
                    self.batch_evidence_steps(entry), partial(found.__setitem__, entry.local_id), failures.append
                )
            for t in open_tickets:
                parking.park(
                    self.settle_ticket_steps(t.ticket_id, t.last_send_epoch),
                    partial(verdicts.__setitem__, t.ticket_id),
                    failures.append,
                )
        if failures:
            raise failures[0]  # an auth error, or the journal: nothing was sent, so say it plainly
        for entry in open_batches:
            if entry.batch_id is not None:
                self._recover_known(entry, entry.batch_id, notes, busy, pending)
                continue
            ev = found[entry.local_id]
            n = len(entry.addresses)
            if ev.kind == EvidenceKind.FOUND:
                if len(ev.batch_ids) == 1:
                    self.journal.batch_state(
                        entry.local_id, BatchState.SUBMITTED, batch_id=ev.batch_ids[0], detail=ev.detail
                    )
                pending.append(
                    PendingBatch(
                        entry.local_id,
                        entry.addresses,
                        ev.batch_ids,
                        entry.submitted_epoch,
                        f"a batch of {n} registration(s) sent by an earlier run without an answer: {ev.detail}",
                    )
                )
            elif ev.kind == EvidenceKind.NONE:
                self.journal.batch_state(entry.local_id, BatchState.IN_DOUBT, detail=ev.detail)
                why = (
                    f"sent by an earlier run at {entry.submitted_at} without an answer, and there is no evidence "
                    f"yet of what became of it ({ev.detail}); kept out of this run"
                )
                busy += [(a, why) for a in entry.addresses]
            else:
                self.journal.batch_state(entry.local_id, BatchState.RESOLVED, detail=ev.detail)
                notes.append(
                    f"a batch of {n} registration(s) sent by an earlier run without an answer was "
                    f"{ev.detail}; their live state is read and planned again"
                )
        for t in open_tickets:
            verdict = verdicts.get(t.ticket_id)
            if verdict is None:
                busy.append(
                    (
                        t.address,
                        "sent by an earlier run without an answer, and reading it back from SEI "
                        "failed; it is read back again before anything is sent",
                    )
                )
            elif verdict.kind == VerdictKind.MATCH:
                self.journal.ticket_event(0, t.ticket_id, t.address, TicketEvent.CONFIRMED, "read back by recovery")
                notes.append(
                    f"{t.address}: sent by an earlier run without an answer; SEI has it (the plan compares its values)"
                )
            elif verdict.kind == VerdictKind.DIFFERS:
                self.journal.ticket_event(0, t.ticket_id, t.address, TicketEvent.CONFLICT, verdict.detail)
                notes.append(
                    f"{t.address}: sent by an earlier run without an answer; SEI holds other values ({verdict.detail})"
                )
            else:
                self.journal.ticket_event(0, t.ticket_id, t.address, TicketEvent.ABSENT_SETTLED, verdict.detail)
                notes.append(
                    f"{t.address}: sent by an earlier run without an answer; {verdict.detail}, so it is planned again"
                )
        busy += [(a, p.evidence + "; tracked until it ends, never resubmitted") for p in pending for a in p.addresses]
        return Recover(tuple(notes), tuple(busy), tuple(pending))

    def _recover_known(
        self,
        entry: BatchEntry,
        batch_id: int,
        notes: list[str],
        busy: list[tuple[str, str]],
        pending: list[PendingBatch],
    ) -> None:
        try:
            status = self.vendors.orion.batch_status(batch_id)
        except NotFoundError:
            self.journal.batch_state(
                entry.local_id,
                BatchState.RESOLVED,
                batch_id=batch_id,
                detail="Orion does not know this batch id (404)",
            )
            notes.append(
                f"batch {batch_id} from an earlier run is unknown to Orion (404); its "
                f"{len(entry.addresses)} registration(s) are read and planned again"
            )
            return
        except ApiAuthError:
            raise
        except ApiError as e:
            why = f"batch {batch_id} from an earlier run: its status cannot be read ({bounded(e, 120)})"
            busy += [(a, why) for a in entry.addresses]
            return
        if status.is_done:
            self.journal.batch_state(entry.local_id, BatchState.ENDED, batch_id=batch_id, detail=status.status)
            notes.append(f"resumed tracking batch {batch_id} from an earlier run: {bounded(status.status, 40)}")
        else:
            assert batch_id is not None  # _recover_known is for batches whose id we know
            pending.append(
                PendingBatch(
                    entry.local_id,
                    entry.addresses,
                    (batch_id,),
                    entry.submitted_epoch,
                    f"batch {batch_id} from an earlier run is still {bounded(status.status, 40)}",
                )
            )
