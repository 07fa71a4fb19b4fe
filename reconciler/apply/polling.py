"""When to ask Orion again how a batch is doing.

Backoff alone (0.05 s, growing by half to 1 s) noticed a batch of 0.3 s about 0.15 s after it ended and
asked three or four times; a slot held for that lag is a slot no batch uses, and every poll is a request
the vendor may answer 429, which pauses every Orion worker (API.md §3). The status says how far the
batch got (`itemsCompleted` of `totalItems`): at the rate so far, the rest takes `elapsed × (total −
done) / done`.

- While the batch moves (more items done than at the last poll), the next poll is at that estimate,
  never sooner than POLL_FIRST. The estimate runs a little early (our clock starts when Orion's answer
  arrives, a few milliseconds after Orion's own), so a batch is usually seen ended one short poll later.
- When it does not move (New, stalled, or stuck at 99 % for an hour), polls back off as before: never
  more often than the backoff's gap.
- Never more than POLL_MAX apart, whatever the estimate: an ended batch is noticed within about a second.
"""

from __future__ import annotations

from reconciler.vendors.orion import BatchStatus

__all__ = ["POLL_FIRST", "POLL_GROWTH", "POLL_MAX", "next_poll"]

# seconds between status polls: start quick, back off by half to 1 s, so an ended batch is noticed within
# about a second, and a short one within a tenth (at 5 s, a batch of 0.3 s cost 2.5 s on average; 200 of
# them, four at a time, two minutes)
POLL_FIRST, POLL_GROWTH, POLL_MAX = 0.05, 1.5, 1.0
ETA_MARGIN = 0.01  # seconds past the estimate


def next_poll(elapsed: float, gap: float, status: BatchStatus | None, done_before: int) -> float:
    """Seconds until the next poll of a batch sent `elapsed` seconds ago, whose backoff gap is `gap` and
    which had `done_before` items done at the poll before this one."""
    done, total = (status.items_completed, status.total_items) if status is not None else (None, None)
    if not done or not total or done >= total or elapsed <= 0:
        return gap
    rest = elapsed * (total - done) / done + ETA_MARGIN
    if done > done_before:  # it moves: poll when it should end
        return min(POLL_MAX, max(POLL_FIRST, rest))
    return min(POLL_MAX, max(gap, rest))  # it does not: back off, or wait for the estimate if that is later
