"""What must hold after any apply, however it was interrupted: exactly once, one open batch per
registration, SEI after Orion, and nothing left to do. Each waits for held requests to land first."""

from __future__ import annotations

from .processes import reconciler
from .sandbox import quiet

__all__ = [
    "assert_converged_now",
    "assert_exactly_once",
    "assert_never_in_two_open_batches",
    "assert_tickets_after_batches",
]


def assert_never_in_two_open_batches(sb) -> None:
    """No registration was put in a batch while another batch holding it was still open."""
    quiet(sb)
    with sb.state.lock:
        spans = [
            (b.created, b.finished_at if b.finished else float("inf"), {int(i["registrationId"]) for i in b.items})
            for b in sb.state.batches.values()
        ]
    for n, (s1, e1, r1) in enumerate(spans):
        for s2, _, r2 in spans[n + 1 :]:
            assert not (r1 & r2 and s1 <= s2 < e1), "a registration was put in two open batches"


def assert_exactly_once(sb, tickets) -> None:
    """Every ticket stored once and POSTed once; no registration in two open batches."""
    quiet(sb)
    for t in tickets:
        assert sb.state.ticket_count(t) == 1, f"ticket {t} stored {sb.state.ticket_count(t)} times"
        assert sb.state.ticket_posts.get(t) == 1, f"ticket {t} POSTed {sb.state.ticket_posts.get(t)} times"
    assert_never_in_two_open_batches(sb)


def assert_tickets_after_batches(sb) -> None:
    """The gate: no ticket reached SEI before every batch had ended."""
    quiet(sb)
    last_end = max(b.finished_at for b in sb.state.batches.values())
    assert all(b.finished for b in sb.state.batches.values())
    assert all(t >= last_end for t in sb.state.ticket_post_times), "a ticket was sent while a batch was processing"


def assert_converged_now(env: dict[str, str], **kw) -> None:
    """A fresh plan has nothing to do."""
    check = reconciler(env, "plan", "--detailed-exitcode", **kw)
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
