"""A plan's apply stages as data: what `plan` explains and what `apply` runs are the same tuple.

    Recover   writes from earlier runs whose outcome is in doubt, resolved from the journal and
              live state before anything is planned or sent (the only stage that precedes the plan:
              what it finds decides what may be planned)
    OrionWave this plan's batches, `parallelism` at a time, and the earlier runs' batches still
              processing, tracked beside them
    Gate      SEI requests wait until every one of those batches has ended
    SeiWave   one request per missing trade instruction
    Confirm   a fresh read of everything touched or in doubt; exit 0 only if it all matches

`build_stages` is pure. The evaluator (apply/evaluator.py) walks the tuple; explain.py says it in words.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model import Plan, Submission

__all__ = ["Confirm", "Gate", "OrionWave", "PendingBatch", "Recover", "SeiWave", "Stage", "build_stages"]


@dataclass(frozen=True)
class PendingBatch:
    """A batch from an earlier run that may still be processing: tracked, never resubmitted."""

    local_id: str
    addresses: tuple[str, ...]
    batch_ids: tuple[int, ...]  # the id, or every listed candidate when the id was lost
    submitted_epoch: float
    evidence: str  # how we know of it, for the output


@dataclass(frozen=True)
class Recover:
    notes: tuple[str, ...] = ()
    busy: tuple[tuple[str, str], ...] = ()  # (address, why it is kept out of this run)
    pending: tuple[PendingBatch, ...] = ()

    @property
    def busy_addresses(self) -> tuple[str, ...]:
        return tuple(a for a, _ in self.busy)


@dataclass(frozen=True)
class OrionWave:
    batches: tuple[Submission, ...]
    track: tuple[PendingBatch, ...]
    parallelism: int


@dataclass(frozen=True)
class Gate:
    batches: int  # this plan's batches
    tracked: int  # earlier runs' batches still processing


@dataclass(frozen=True)
class SeiWave:
    tickets: tuple[Submission, ...]


@dataclass(frozen=True)
class Confirm:
    addresses: tuple[str, ...]  # what this run touches
    busy: tuple[tuple[str, str], ...] = ()  # what earlier runs left in doubt: reported, read again


Stage = Recover | OrionWave | Gate | SeiWave | Confirm


def build_stages(plan: Plan, recovered: Recover = Recover(), *, parallelism: int = 4) -> tuple[Stage, ...]:
    orion = tuple(s for s in plan.submissions if s.api == "orion")
    sei = tuple(s for s in plan.submissions if s.api == "sei")
    touched = tuple(a for s in plan.submissions for a in s.items)
    stages: list[Stage] = [recovered]
    if orion or recovered.pending:
        stages.append(OrionWave(orion, recovered.pending, parallelism))
    if sei:
        if orion or recovered.pending:
            stages.append(Gate(len(orion), len(recovered.pending)))
        stages.append(SeiWave(sei))
    stages.append(Confirm(touched, recovered.busy))
    return tuple(stages)
