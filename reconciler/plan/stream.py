"""Manifests → live reads → plan as one stream: what `plan` runs, at any size (SPEC.md §8).

Why a stream: holding every desired resource and every live registration at once costs about
40 MiB per 1,000 registrations (3.7 GiB at 100,000), and doing the phases one after another leaves
the network idle while parsing and the CPU idle while reading. Here:
- files are checked in worker processes and arrive in file order (manifests.ManifestStream);
- each registration's id joins a chunk; a full chunk is read at once (the bulk call, `read_workers`
  at a time) while parsing goes on; each chunk is diffed when it arrives and dropped, keeping only
  the live objects of *changed* registrations (their payloads) and a count of the others;
- for a large tree, SEI's ticket pages start at once (they need no manifest); each ticket keeps only
  its first row's declared fields, and an instruction is diffed as soon as both sides are known.
Reads carry only registration ids from documents that passed their own checks; nothing is written
here, and when the tree turns out to have errors everything read is discarded and ManifestError
(every problem) is raised, never a read error.
The result equals `plan.build_plan` on the same inputs, resource for resource (tests/plan/test_stream.py).
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from reconciler.config import Settings
from reconciler.fields import INSTRUCTION_FIELDS
from reconciler.manifests import ManifestStream, fewer_gc_passes
from reconciler.model import Action, DesiredInstruction, DesiredRegistration, ManifestSet, Plan, Policy
from reconciler.plan.builder import PlanBuilder
from reconciler.plan.desired import DesiredStore
from reconciler.plan.targeting import Targeting, TargetingTally, select
from reconciler.vendors import Vendors
from reconciler.vendors.reads import LiveState, missing_registrations_error, read_live_state, read_tickets

__all__ = ["StreamedPlan", "plan_stream", "read_selected"]


# Bulk reads sent and not yet diffed, per read worker, before the stream waits: one running and one
# queued keeps every read worker busy. Unbounded, an Orion slower than parsing left the desired
# registrations of every chunk sent waiting for their reads: the whole tree, at worst
# (tests/plan/test_stream.py: 2,500 of 3,000 waited; 900 with this bound and 100-id chunks).
READS_AHEAD = 2


@dataclass(frozen=True)
class StreamedPlan:
    plan: Plan
    digest: str  # of the manifests, as ManifestSet.digest
    policies: tuple[Policy, ...]
    registrations: int  # declared in the tree
    instructions: int
    selected: int  # of those, checked under --target/--exclude/--selector
    warnings: tuple[str, ...] = ()  # targeting patterns that matched nothing


def _compact(row: dict) -> tuple:
    """A ticket row as the plan needs it: the declared fields of its first order row, nothing else."""
    return tuple(row.get(k) for k in INSTRUCTION_FIELDS)


def _rows(compact: tuple | None) -> list[dict]:
    return [dict(zip(INSTRUCTION_FIELDS, compact))] if compact is not None else []


class _TicketPager:
    """SEI's ticket pages in a thread of their own, keeping each ticket's first row (compacted)."""

    def __init__(self, vendors: Vendors) -> None:
        self.first: dict[int, tuple] = {}
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, args=(vendors,), name="sei-pages", daemon=True)
        self._thread.start()

    def _run(self, vendors: Vendors) -> None:
        try:
            for row in vendors.sei.iter_tickets():
                if self._stop:
                    break
                self.first.setdefault(row["tradeTicketId"], _compact(row))
        except BaseException as e:  # reported by the caller, after any manifest error
            self.error = e
        finally:
            self.done.set()

    def stop(self) -> None:
        self._stop = True


@fewer_gc_passes()  # reads and diffs allocate as much as parsing does
def plan_stream(
    paths: tuple[str, ...],
    vendors: Vendors,
    settings: Settings,
    *,
    targeting: Targeting = Targeting(),
    leave_out: frozenset[str] = frozenset(),
    allow_empty: bool = False,
    today: dt.date | None = None,
    stream: ManifestStream | None = None,
    payloads: bool = True,
    store: DesiredStore | None = None,
    batch_size: int | None = None,
) -> StreamedPlan:
    """Check the manifests under `paths`, read what they declare and plan it, overlapping the three.

    `leave_out`: addresses not checked at all (writes in doubt from an earlier apply), apart from the
    user's targeting, whose patterns are reported when they match nothing.

    Apply's plan (`payloads=False`, `store`): registrations keep no merged live object, and the
    declarations apply will need later (changed registrations, tickets to create, and whatever is left
    out as in doubt) go to `store`, on disk, instead of staying in memory.

    Raises ManifestError / ConfigError for the tree first, then ApiError from a read, then
    LiveStateError for declared resources live state cannot take (as `build_plan` would)."""
    stream = stream or ManifestStream(paths, allow_empty=allow_empty)
    builder = PlanBuilder(ignore=settings.ignore, today=today, payloads=payloads)
    tally = TargetingTally(targeting)
    chunk_size = settings.read_chunk
    pending: dict[int, DesiredRegistration] = {}  # waiting for their chunk's read
    chunk: list[int] = []
    reads: dict[Future, list[int]] = {}
    missing: list[DesiredRegistration] = []
    waiting: dict[int, DesiredInstruction] = {}  # instructions whose ticket is not yet known
    batch_sizes: dict[str, int] = {}
    selected = 0
    read_errors: list[BaseException] = []
    pool = ThreadPoolExecutor(max(1, settings.read_workers), thread_name_prefix="orion-read")
    pager = _TicketPager(vendors) if stream.large else None

    def send_chunk() -> None:
        reads[pool.submit(vendors.orion.list_with_sleeves, list(chunk), chunk=chunk_size, workers=1)] = list(chunk)
        chunk.clear()

    def diff_done(block: bool = False) -> None:
        done = [f for f in reads if f.done()]
        if block and not done and reads:
            done = list(wait(reads, return_when=FIRST_COMPLETED).done)
        for f in done:
            ids = reads.pop(f)
            failure = f.exception()
            if failure is not None:  # raised after the stream: a manifest error comes first
                read_errors.append(failure)
                continue
            live = f.result()
            for rid in ids:
                desired = pending.pop(rid)
                current = live.get(rid)
                if current is None:
                    missing.append(desired)
                elif (d := builder.add_registration(desired, current)) is not None and store is not None:
                    store.put(desired, d)  # the diff too: a batch whose registrations did not change reuses it

    def plan_instruction(desired: DesiredInstruction, row: tuple | None) -> None:
        change = builder.add_instruction(desired, _rows(row), batch_sizes[desired.batch_id])
        if store is not None and change.action is Action.CREATE:
            store.put(desired)

    def add_instruction(desired: DesiredInstruction) -> None:
        if pager is None:
            waiting[desired.ticket_id] = desired
            return
        row = pager.first.get(desired.ticket_id)
        if row is None and not pager.done.is_set():
            waiting[desired.ticket_id] = desired
            return
        plan_instruction(desired, row)

    try:
        for resource in stream:
            if isinstance(resource, DesiredRegistration):
                tally.see(resource.address, resource.labels)
                chosen = targeting.wants(resource.address, resource.labels)
                selected += chosen
                if store is not None and resource.address in leave_out:
                    store.put(resource)  # in doubt: not planned, but confirmed at the end of the run
                elif chosen and resource.address not in leave_out:
                    pending[resource.registration_id] = resource
                    chunk.append(resource.registration_id)
                    if len(chunk) >= chunk_size:
                        send_chunk()
                        while len(reads) > READS_AHEAD * settings.read_workers:  # bounded: see READS_AHEAD
                            diff_done(block=True)
            else:
                batch_sizes[resource.batch_id] = resource.batch_size
                for i in resource.instructions:
                    tally.see(i.address, i.labels)
                    chosen = targeting.wants(i.address, i.labels)
                    selected += chosen
                    if store is not None and i.address in leave_out:
                        store.put(i)
                    elif chosen and i.address not in leave_out:
                        add_instruction(i)
            diff_done()
        if chunk:
            send_chunk()
        while reads:
            diff_done(block=True)
        if read_errors:
            raise read_errors[0]
        if pager is not None:
            pager.done.wait()
            if pager.error is not None:
                raise pager.error
            first = pager.first
        else:
            first = {tid: _compact(rows[0]) for tid, rows in read_tickets(vendors, list(waiting), settings).items()}
    finally:  # on a manifest error too: stop reading, start nothing more
        if pager is not None:
            pager.stop()
        pool.shutdown(wait=False, cancel_futures=True)
    if missing:
        raise missing_registrations_error(missing)
    builder.check()
    for tid, desired in waiting.items():
        plan_instruction(desired, first.get(tid))
    return StreamedPlan(
        builder.plan(batch_size or settings.batch_size),
        stream.digest,
        stream.policies,
        stream.registrations,
        stream.instructions,
        selected,
        tuple(tally.warnings()),
    )


def read_selected(
    manifests: ManifestSet,
    vendors: Vendors,
    settings: Settings,
    targeting: Targeting = Targeting(),
    *,
    missing_ok: bool = False,
) -> tuple[list[DesiredRegistration], list[DesiredInstruction], LiveState]:
    """select → read, with everything in memory: what drift, --adopt and apply share."""
    regs, instrs = select(manifests, targeting)
    return regs, instrs, read_live_state(vendors, regs, instrs, settings, missing_ok=missing_ok)
