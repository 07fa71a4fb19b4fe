"""A batch inside the emulator, and how BatchProcessing describes it at a moment: New for the first part
of its latency, then Processing with a share of its items done, then the status it finished with."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.sandbox.writes import now_iso

__all__ = ["Batch", "SandboxTiming", "status_view"]


@dataclass
class SandboxTiming:
    batch_latency: float = 1.0  # seconds from submit to done, per batch, batches run concurrently
    new_fraction: float = 0.2  # first part of the latency shows as New, the rest as Processing


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


def status_view(b: Batch, now: float, timing: SandboxTiming) -> dict:
    """GET /v1/Utility/BatchProcessing/{id} for `b` at `now` (the fields of the seed)."""
    elapsed = max(0.0, now - b.created)
    if b.finished:
        status, completed = b.status, len(b.items)
    elif elapsed < timing.batch_latency * timing.new_fraction and not b.stuck:
        status, completed = "New", 0
    else:
        status = "Processing"
        share = 0.5 if b.stuck else min(0.99, elapsed / max(timing.batch_latency, 1e-9))
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
