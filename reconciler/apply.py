"""Plan → submissions against the vendors, journaled, concurrent, and checked until it converges.

Order and safety (SPEC.md §5, API.md §1–3):
1. `recover()` first finishes tracking batches an earlier, killed run left in flight, by id; it never
   resubmits them. Registrations of a batch still processing are kept out of this run.
2. Wave 1: Orion batches, `parallelism` at a time, each journaled before it is sent, polled with
   backoff until `isDone`, its /Errors read, then its registrations re-read to decide per item.
3. Wave 2: SEI tickets, one POST each, only once every Orion batch has ended. After any ambiguous
   outcome the ticket is read back (`GET ?id=`) before a re-send; a 409 whose read-back shows our
   values counts as applied.
4. A fresh read confirms that what was applied now matches the manifests.
Items end `applied`, `failed` (with the vendor's message), `unknown`, or `skipped` (never sent).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from reconciler.config import Settings
from reconciler.diff import diff_instruction, diff_registration
from reconciler.errors import AmbiguousWriteError, ApiError, LiveStateError, TicketExistsError
from reconciler.journal import ENDED, REFUSED, SUBMITTED, TIMED_OUT, UNKNOWN, Journal
from reconciler.live import read_live_state
from reconciler.model import Action, ManifestSet, Plan, Source, Submission
from reconciler.plan import fingerprint_registration, fingerprint_ticket

__all__ = ["ApplyResult", "Applier", "ItemResult", "stale_reasons"]

APPLIED, FAILED, UNKNOWN_OUTCOME, SKIPPED = "applied", "failed", "unknown", "skipped"
# A ticket is sent at most this many times, each only after a read-back showed SEI does not have it.
MAX_TICKET_SENDS = 3
POLL_FIRST, POLL_MAX = 0.1, 5.0   # seconds between batch status polls: start quick, back off to 5 s


@dataclass
class ItemResult:
    address: str
    action: str
    status: str
    message: str
    source: Source
    reference: str | None = None     # "batch 26140410" or "ticket 10000002"


@dataclass
class ApplyResult:
    items: list[ItemResult] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    converged: bool = False
    interrupted: bool = False
    started: str = ""
    finished: str = ""

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for i in self.items if i.status == s) for s in (APPLIED, FAILED, UNKNOWN_OUTCOME, SKIPPED)}

    @property
    def exit_code(self) -> int:
        return 0 if self.converged and all(i.status == APPLIED for i in self.items) else 3


class Applier:
    def __init__(self, vendors, journal: Journal, settings: Settings, manifests: ManifestSet, *,
                 progress: Callable[[str, str], None] | None = None, stop: threading.Event | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.vendors = vendors
        self.journal = journal
        self.settings = settings
        self.regs = {r.address: r for r in manifests.registrations}
        self.instrs = {i.address: i for i in manifests.instructions}
        self.progress = progress or (lambda kind, text: None)
        self.stop = stop or threading.Event()
        self.sleep = sleep
        self._lock = threading.Lock()
        self._results: dict[str, ItemResult] = {}
        self._ended: set[str] = set()

    # --- 1. recovery ------------------------------------------------------------------------------

    def recover(self) -> tuple[list[str], set[str]]:
        """Finish tracking batches left in flight; returns notes and addresses still being processed."""
        notes: list[str] = []
        busy: set[str] = set()
        for entry in self.journal.open_batches():
            status = self._poll(entry.batch_id)
            if status is None:
                self.journal.batch_state(entry.local_id, TIMED_OUT, batch_id=entry.batch_id, detail="still processing")
                busy.update(entry.addresses)
                notes.append(f"batch {entry.batch_id} from an earlier run is still processing; its "
                             f"{len(entry.addresses)} registration(s) are left out of this run and tracked again next time")
            else:
                self.journal.batch_state(entry.local_id, ENDED, batch_id=entry.batch_id, detail=status.get("status"))
                notes.append(f"resumed tracking batch {entry.batch_id} from an earlier run: {status.get('status')}")
        for entry in self.journal.unresolved_batches():
            self.journal.batch_state(entry.local_id, ENDED, detail="outcome unknown; re-planned from live state")
            notes.append(f"a batch of {len(entry.addresses)} registration(s) from an earlier run got no answer; "
                         "their live state is re-read and planned again")
        for ticket_id, address in self.journal.unresolved_tickets():
            self.journal.ticket(0, ticket_id, address, "resolved", "read back by the re-plan")
            notes.append(f"{address}: sent by an earlier run without an answer; read back from SEI before any re-send")
        return notes, busy

    # --- 2–4. apply -------------------------------------------------------------------------------

    def apply(self, plan: Plan, run_id: int) -> ApplyResult:
        result = ApplyResult(started=_now())
        orion = [s for s in plan.submissions if s.api == "orion"]
        sei = [s for s in plan.submissions if s.api == "sei"]
        changes = {c.address: c for c in plan.changes}
        if orion:
            with ThreadPoolExecutor(self.settings.parallelism, thread_name_prefix="orion-batch") as pool:
                list(pool.map(lambda s: self._run_batch(s, run_id, changes), orion))
        open_batches = [s for s in orion if s.items[0] not in self._ended]
        if sei:
            if self.stop.is_set():
                self._skip(sei, changes, "not sent: apply was interrupted before the SEI wave")
            elif open_batches:
                self._skip(sei, changes, f"not sent: {len(open_batches)} Orion batch(es) have not ended, and SEI "
                                         "requests start only after every Orion batch has ended; rerun apply")
            else:
                with ThreadPoolExecutor(self.settings.parallelism, thread_name_prefix="sei-ticket") as pool:
                    list(pool.map(lambda s: self._send_ticket(s, run_id, changes), sei))
        result.items = [self._results[c.address] for c in plan.changes if c.address in self._results]
        result.interrupted = self.stop.is_set()
        self._confirm(result)
        result.finished = _now()
        return result

    def _record(self, item: ItemResult) -> None:
        with self._lock:
            self._results[item.address] = item
        self.progress("item", f"{item.status} {item.address}")

    def _skip(self, subs: list[Submission], changes, message: str) -> None:
        for s in subs:
            for a in s.items:
                self._record(ItemResult(a, changes[a].action.value, SKIPPED, message, changes[a].source))

    def _run_batch(self, sub: Submission, run_id: int, changes) -> None:
        items = [self.regs[a] for a in sub.items]

        def mark(status: str, message: str, ref: str | None = None, only: str | None = None) -> None:
            for reg in items:
                if only is None or reg.address == only:
                    self._record(ItemResult(reg.address, Action.UPDATE.value, status, message, reg.source, ref))

        if self.stop.is_set():
            mark(SKIPPED, "not sent: apply was interrupted")
            return
        local_id = uuid.uuid4().hex
        self.journal.batch_submitting(run_id, local_id, sub.items, [r.registration_id for r in items])
        try:
            batch_id = self.vendors.orion.submit_batch(sub.body)
        except AmbiguousWriteError as e:
            self.journal.batch_state(local_id, UNKNOWN, detail=str(e))
            mark(UNKNOWN_OUTCOME, f"the batch was sent but its answer was lost ({e.status or 'no answer'}); "
                                  "a rerun reads live state before sending anything again")
            return
        except ApiError as e:
            self.journal.batch_state(local_id, REFUSED, detail=str(e))
            self._ended.update(sub.items)
            mark(FAILED, f"Orion refused the batch: {e}")
            return
        self.journal.batch_state(local_id, SUBMITTED, batch_id=batch_id)
        self.progress("batch", f"submitted batch {batch_id} ({len(items)} registrations)")
        status = self._poll(batch_id)
        ref = f"batch {batch_id}"
        if status is None:
            self.journal.batch_state(local_id, TIMED_OUT, batch_id=batch_id, detail="poll timeout")
            mark(UNKNOWN_OUTCOME, f"batch {batch_id} had not ended after {self.settings.poll_timeout:g} s; "
                                  "a rerun keeps tracking this batch id instead of resubmitting", ref)
            return
        try:
            errors = self.vendors.orion.batch_errors(batch_id) if status.get("errorCount") else []
        except ApiError as e:
            errors = [{"severity": "Error", "errorMessage": f"(the batch's errors could not be read: {e})"}]
        self.journal.batch_state(local_id, ENDED, batch_id=batch_id, detail=status.get("status"))
        self._ended.update(sub.items)
        self.progress("batch", f"batch {batch_id} {status.get('status')}")
        try:
            live = self.vendors.orion.list_with_sleeves([r.registration_id for r in items])
        except ApiError as e:
            mark(UNKNOWN_OUTCOME, f"batch {batch_id} ended {status.get('status')}, but re-reading its registrations "
                                  f"failed: {e}", ref)
            return
        hard = [e for e in errors if e.get("severity") == "Error"]  # warnings never fail an item
        for reg in items:
            current = live.get(reg.registration_id)
            hint = [e["errorMessage"] for e in hard
                    if str(e.get("errorMessage", "")).startswith(f"registrationId {reg.registration_id}:")]
            if current is not None and not diff_registration(reg, current, self.settings.ignore).changed:
                mark(APPLIED, f"batch {batch_id} {status.get('status')}", ref, only=reg.address)
            elif hint:
                mark(FAILED, hint[0].split(":", 1)[1].strip(), ref, only=reg.address)
            elif status.get("status") == "Failed":
                detail = "; ".join(str(e.get("errorMessage")) for e in hard[:2]) or status.get("message") or "no detail"
                mark(FAILED, f"batch {batch_id} Failed: {detail}", ref, only=reg.address)
            else:
                mark(UNKNOWN_OUTCOME, f"batch {batch_id} ended {status.get('status')}, but the registration does not "
                                      "match the plan", ref, only=reg.address)

    def _poll(self, batch_id: int) -> dict | None:
        """Status until isDone, backing off; None when the poll timeout passes first."""
        deadline = time.monotonic() + self.settings.poll_timeout
        delay = POLL_FIRST
        while True:
            try:
                status = self.vendors.orion.batch_status(batch_id)
                self.progress("poll", f"batch {batch_id} {status.get('status')} "
                                      f"{status.get('itemsCompleted')}/{status.get('totalItems')}")
                if status.get("isDone"):
                    return status
            except ApiError as e:
                self.progress("poll", f"batch {batch_id}: status not readable ({e}); retrying")
            if time.monotonic() + delay > deadline:
                return None
            self.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    def _send_ticket(self, sub: Submission, run_id: int, changes) -> None:
        address = sub.items[0]
        desired = self.instrs[address]
        change = changes[address]

        def done(status: str, message: str) -> None:
            self._record(ItemResult(address, Action.CREATE.value, status, message, desired.source,
                                    f"ticket {desired.ticket_id}"))

        if self.stop.is_set():
            done(SKIPPED, "not sent: apply was interrupted")
            return
        for attempt in range(1, MAX_TICKET_SENDS + 1):
            self.journal.ticket(run_id, desired.ticket_id, address, "sending")
            try:
                self.vendors.sei.submit_ticket(sub.body["data"])
                self.journal.ticket(run_id, desired.ticket_id, address, "sent")
                done(APPLIED, "accepted by SEI")
                return
            except TicketExistsError:
                self.journal.ticket(run_id, desired.ticket_id, address, "exists")
                verdict = self._read_back(desired)
                if verdict is None:
                    done(UNKNOWN_OUTCOME, "SEI answered 409 and reading the ticket back failed")
                elif verdict == "match":
                    done(APPLIED, "already at SEI with the same values (409 on send)")
                else:
                    done(FAILED, f"SEI holds this tradeTicketId with other values ({verdict}); a ticket cannot change")
                return
            except AmbiguousWriteError as e:
                self.journal.ticket(run_id, desired.ticket_id, address, "unknown", str(e))
                verdict = self._read_back(desired)
                if verdict is None:
                    done(UNKNOWN_OUTCOME, f"the answer was lost ({e.status or 'no answer'}) and reading the ticket "
                                          "back failed; a rerun reads it back before any re-send")
                    return
                if verdict == "match":
                    self.journal.ticket(run_id, desired.ticket_id, address, "sent", "confirmed by read-back")
                    done(APPLIED, "the answer was lost, but the read-back shows SEI has it")
                    return
                if verdict != "absent":
                    done(FAILED, f"after a lost answer SEI holds the ticket with other values ({verdict})")
                    return
                self.journal.ticket(run_id, desired.ticket_id, address, "absent", "read back: not at SEI; sending again")
            except ApiError as e:
                self.journal.ticket(run_id, desired.ticket_id, address, "refused", str(e))
                done(FAILED, f"SEI refused the instruction: {e}")
                return
        done(UNKNOWN_OUTCOME, f"sent {MAX_TICKET_SENDS} times without an answer, and SEI does not show it yet")

    def _read_back(self, desired) -> str | None:
        """'match', 'absent', a description of the differing fields, or None if SEI cannot be read."""
        try:
            rows = self.vendors.sei.get_ticket(desired.ticket_id)
        except ApiError:
            return None
        if not rows:
            return "absent"
        d = diff_instruction(desired, rows, self.settings.ignore)
        return "match" if not d.conflict else ", ".join(f"{f.path}: {f.before} vs {f.after}" for f in d.fields)

    def _confirm(self, result: ApplyResult) -> None:
        """A fresh read: every applied item must now match its manifest."""
        applied = [i for i in result.items if i.status == APPLIED]
        regs = [self.regs[i.address] for i in applied if i.address in self.regs]
        instrs = [self.instrs[i.address] for i in applied if i.address in self.instrs]
        try:
            live = read_live_state(self.vendors, regs, instrs, self.settings)
        except (ApiError, LiveStateError) as e:
            for i in applied:
                i.status, i.message = UNKNOWN_OUTCOME, f"{i.message}; the confirming read failed: {e}"
            result.converged = False
            return
        for i in applied:
            if i.address in self.regs:
                ok = not diff_registration(self.regs[i.address], live.registrations[self.regs[i.address].registration_id],
                                           self.settings.ignore).changed
            else:
                rows = live.tickets.get(self.instrs[i.address].ticket_id, [])
                ok = bool(rows) and not diff_instruction(self.instrs[i.address], rows, self.settings.ignore).conflict
            if not ok:
                i.status, i.message = UNKNOWN_OUTCOME, f"{i.message}, but a fresh read does not match the manifest"
        result.converged = all(i.status == APPLIED for i in result.items)


def stale_reasons(plan: Plan, live, *, expected_digest: str, digest: str, expired: bool,
                  expires_at: dt.datetime) -> list[str]:
    """Why a saved plan may not be applied as it stands: manifests, expiry, or touched live state changed."""
    reasons = []
    if expired:
        reasons.append(f"the plan expired at {expires_at:%Y-%m-%d %H:%M %Z}")
    if digest != expected_digest:
        reasons.append("the manifests changed since the plan was made")
    for c in plan.changes:
        if c.action is Action.UPDATE:
            reg_id = c.payload["registrationId"]
            current = live.registrations.get(reg_id)
            if current is None:
                reasons.append(f"{c.address}: registration {reg_id} is gone from Orion")
            elif fingerprint_registration(current) != c.fingerprint:
                reasons.append(f"{c.address}: live state changed since the plan (edited by "
                               f"{current.get('editedBy')} at {current.get('editedDate')})")
        elif c.action in (Action.CREATE, Action.CONFLICT):
            ticket = int(c.address.split("/", 1)[1])
            if fingerprint_ticket(live.tickets.get(ticket, [])) != c.fingerprint:
                reasons.append(f"{c.address}: the ticket at SEI changed since the plan")
    return reasons


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
