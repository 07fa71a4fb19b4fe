"""When to ask Orion again how a batch is doing.

Backoff alone (0.05 s, growing by half to 1 s) noticed a batch of 0.3 s about 0.15 s after it ended and
asked three or four times; a slot held for that lag is a slot no batch uses, and every poll is a request
the vendor may answer 429, which pauses every Orion worker (API.md §3). The status says how far the
batch got (`itemsCompleted` of `totalItems`): at the rate so far, the rest takes `elapsed × (total −
done) / done`. The next poll waits that long when it is longer than the backoff's gap, never less than
the gap (a batch whose progress stalls, or a stuck one that says 50 % for an hour, is polled exactly as
backoff polls it) and never more than POLL_MAX (an ended batch is still noticed within about a second,
whatever the estimate said).
"""

from __future__ import annotations

from reconciler.vendors.orion import BatchStatus

__all__ = ["POLL_FIRST", "POLL_GROWTH", "POLL_MAX", "next_poll"]

# seconds between status polls: start quick, back off by half to 1 s, so an ended batch is noticed within
# about a second, and a short one within a tenth (at 5 s, a batch of 0.3 s cost 2.5 s on average; 200 of
# them, four at a time, two minutes)
POLL_FIRST, POLL_GROWTH, POLL_MAX = 0.05, 1.5, 1.0
ETA_MARGIN = 0.01  # seconds past the estimate: the client's clock starts a little after Orion's


def next_poll(elapsed: float, gap: float, status: BatchStatus | None) -> float:
    """Seconds until the next poll of a batch sent `elapsed` seconds ago, whose backoff gap is `gap`."""
    done, total = (status.items_completed, status.total_items) if status is not None else (None, None)
    if not done or not total or done >= total or elapsed <= 0:
        return gap
    rest = elapsed * (total - done) / done + ETA_MARGIN
    return min(POLL_MAX, max(gap, rest))
