"""A batch inside the emulator, and how BatchProcessing describes it at a moment: New for the first part
of its latency, then Processing with a share of its items done, then the status it finished with."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from reconciler.sandbox.writes import now_iso

__all__ = ["Batch", "SandboxTiming", "parse_latency", "status_view"]


@dataclass
class SandboxTiming:
    batch_latency: float = 1.0  # seconds from submit to done, per batch, batches run concurrently
    new_fraction: float = 0.2  # first part of the latency shows as New, the rest as Processing
    batch_latency_max: float | None = None  # each batch takes a latency drawn from [batch_latency, this]
    seed: int | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self) -> float:
        """One batch's latency: fixed, or drawn from the range (a real vendor's batches vary)."""
        if self.batch_latency_max is None or self.batch_latency_max <= self.batch_latency:
            return self.batch_latency
        return self._rng.uniform(self.batch_latency, self.batch_latency_max)


def parse_latency(text: str) -> tuple[float, float | None]:
    """`2` (every batch 2 s) or `1-2` (each batch between 1 and 2 s)."""
    low, sep, high = text.partition("-")
    try:
        return (float(low), float(high) if sep else None)
    except ValueError:
        raise ValueError(f"--batch-latency {text!r}: seconds, or a range like 1-2") from None


@dataclass
class Batch:
    id: int
    items: list[dict]
    created: float
    created_iso: str
    created_by: str
    created_epoch: float = 0.0  # wall clock, for the BatchProcessing list's date filter
    stuck: bool = False
    rejected: frozenset = frozenset()  # registrationIds a fault makes Orion refuse
    finished: bool = False
    finished_at: float = 0.0
    status: str = "New"
    errors: list[dict] = field(default_factory=list)
    items_completed: int = 0
    latency: float = 1.0  # this batch's own time from submit to done


def status_view(b: Batch, now: float, timing: SandboxTiming) -> dict:
    """GET /v1/Utility/BatchProcessing/{id} for `b` at `now` (the fields of the seed)."""
    elapsed = max(0.0, now - b.created)
    if b.finished:
        status, completed = b.status, len(b.items)
    elif elapsed < b.latency * timing.new_fraction and not b.stuck:
        status, completed = "New", 0
    else:
        status = "Processing"
        share = 0.5 if b.stuck else min(0.99, elapsed / max(b.latency, 1e-9))
        completed = int(len(b.items) * share)
    return {
        "id": b.id,
        "correlationId": f"sandbox-{b.id}",
        "alClientName": "Sandbox Advisors",
        "status": status,
        "message": None,
        "createdBy": b.created_by,
        "createdDate": b.created_iso,
        "editedDate": now_iso(),
        "elapsed": f"{elapsed:.1f}s",
        "parentId": None,
        "isDone": b.finished,
        "totalItems": len(b.items),
        "itemsCompleted": completed,
        "processingType": "SleeveRegistrationBatch",
        "errorCount": sum(1 for e in b.errors if e["severity"] == "Error"),
        "warningCount": sum(1 for e in b.errors if e["severity"] == "Warning"),
        "details": None,
    }
