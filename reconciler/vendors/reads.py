"""Live state for exactly the resources the manifests declare, through the bulk reads.

Registrations come from ListWithAccountSleeves in chunks, several chunks at once, never one GET per
registration. Trade tickets come from SEI's paged list; when only a few are declared, one `GET ?id=`
each is cheaper than paging through a firm's whole ticket history.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from reconciler.config import Settings
from reconciler.errors import ApiError, Diagnostic, LiveStateError
from reconciler.model import Action, DesiredInstruction, DesiredRegistration

__all__ = [
    "missing_registration",
    "LiveState",
    "PER_TICKET_READ_LIMIT",
    "ServerVerdict",
    "missing_registrations_error",
    "read_live_state",
    "server_validate",
]

# Up to this many declared tickets are read one `GET ?id=` each (concurrently); beyond it, one pass
# over the paged list (1,000 rows a page) costs fewer requests.
PER_TICKET_READ_LIMIT = 50


@dataclass(frozen=True)
class LiveState:
    registrations: dict[int, dict] = field(default_factory=dict)
    tickets: dict[int, list[dict]] = field(default_factory=dict)  # tradeTicketId → order rows


def read_live_state(
    vendors,
    registrations: tuple[DesiredRegistration, ...] | list,
    instructions: tuple[DesiredInstruction, ...] | list,
    settings: Settings,
    *,
    missing_ok: bool = False,
) -> LiveState:
    """Read what the given desired resources need; a registration missing in Orion is an error
    (for plan and apply), or simply absent from the result (`missing_ok`, for drift reports)."""
    ids = [r.registration_id for r in registrations]
    regs: dict[int, dict] = {}
    # the two vendors are independent: page through SEI while Orion's bulk reads run
    with ThreadPoolExecutor(1, thread_name_prefix="sei-read") as pool:
        tickets = pool.submit(read_tickets, vendors, [i.ticket_id for i in instructions], settings)
        if ids:
            regs = vendors.orion.list_with_sleeves(ids, chunk=settings.read_chunk, workers=settings.read_workers)
        live = LiveState(regs, tickets.result())
    missing = [r for r in registrations if r.registration_id not in live.registrations]
    if missing and not missing_ok:
        raise missing_registrations_error(missing)
    return live


def missing_registrations_error(missing: list[DesiredRegistration]) -> LiveStateError:
    return LiveStateError(
        "registrations declared in the manifests are missing in Orion; they cannot be created "
        "through the API (fix the registrationId or remove the manifest):",
        [missing_registration(r) for r in missing],
    )


def missing_registration(r: DesiredRegistration) -> Diagnostic:
    return r.source.problem(f"{r.address} (registrationId {r.registration_id}) does not exist in Orion")


def read_tickets(vendors, ticket_ids: list[int], settings: Settings) -> dict[int, list[dict]]:
    wanted = set(ticket_ids)
    if not wanted:
        return {}
    if len(wanted) <= PER_TICKET_READ_LIMIT:
        with ThreadPoolExecutor(max(1, min(settings.read_workers, len(wanted)))) as pool:
            rows = dict(zip(sorted(wanted), pool.map(vendors.sei.get_ticket, sorted(wanted))))
        return {tid: r for tid, r in rows.items() if r}
    out: dict[int, list[dict]] = {}
    for row in vendors.sei.iter_tickets():
        tid = int(row.get("tradeTicketId", -1))
        if tid in wanted:
            out.setdefault(tid, []).append(row)
    return out


@dataclass(frozen=True)
class ServerVerdict:
    """Orion's Validate on one changed registration: its answer, or why it could not be asked."""

    address: str
    source: str
    is_valid: bool | None  # None: not asked (see `error`)
    message: str | None = None
    error: str | None = None


def server_validate(vendors, changes) -> list[ServerVerdict]:
    """Orion's own dry run (`PUT …/Validate`) for every changed registration's payload, in plan order.
    A failed call is reported with its error; it never stops the others."""
    out = []
    for c in changes:
        if c.action is not Action.UPDATE:
            continue
        try:
            answer = vendors.orion.validate(c.payload)
        except ApiError as e:
            out.append(ServerVerdict(c.address, str(c.source), None, error=str(e)))
            continue
        out.append(
            ServerVerdict(c.address, str(c.source), bool(answer.get("isValid", True)), answer.get("validationMessage"))
        )
    return out
