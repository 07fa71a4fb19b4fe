"""Value objects shared by every layer: desired resources, changes, submissions and the plan.

Frozen dataclasses with tuples, so a Plan built once can be rendered, saved and applied without anyone
mutating it on the way (the sqlmesh habit: the plan is data). Dict-valued fields hold vendor objects
exactly as JSON; they are treated as read-only by convention.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import Diagnostic
from reconciler.escaping import visible

__all__ = [
    "Action",
    "Change",
    "DesiredBatch",
    "DesiredInstruction",
    "DesiredRegistration",
    "DesiredSleeve",
    "FieldChange",
    "IgnoredChange",
    "ManifestSet",
    "Plan",
    "Policy",
    "Source",
    "Submission",
    "Window",
    "instruction_address",
    "registration_address",
]


def registration_address(name: str) -> str:
    return f"SleeveRegistration/{name}"


def instruction_address(ticket_id: int) -> str:
    return f"TradeInstruction/{ticket_id}"


@dataclass(frozen=True, order=True)
class Source:
    """Where a desired resource was declared: 1-based line and column, as editors count."""

    file: str
    line: int
    col: int = 1

    def __str__(self) -> str:
        return f"{visible(self.file)}:{self.line}"  # file names are untrusted text too

    def problem(self, message: str, hint: str = "") -> Diagnostic:
        """A problem with what was declared here, at its file, line and column."""
        return Diagnostic(visible(self.file), self.line, self.col, message, hint)


@dataclass(frozen=True)
class DesiredSleeve:
    fields: dict[str, Any]  # declared sleeve fields, accountId included when given
    source: Source

    @property
    def account_id(self) -> int | None:
        return self.fields.get("accountId") or None

    @functools.cached_property
    def comparable(self) -> dict[str, Any]:
        """The declared values to compare with a live sleeve: no identity, `model.id` as modelAggId."""
        out = {k: v for k, v in self.fields.items() if k not in ("accountId", "model")}
        if "model" in self.fields and "modelAggId" not in out:
            out["modelAggId"] = self.fields["model"]["id"]  # `model.id` and `modelAggId` name the same thing
        return out


@dataclass(frozen=True)
class DesiredRegistration:
    name: str
    registration_id: int
    fields: dict[str, Any]  # declared registration-level fields (template merged)
    sleeves: tuple[DesiredSleeve, ...]
    source: Source
    labels: dict[str, str] = field(default_factory=dict)
    template: str | None = None

    @property
    def address(self) -> str:
        return registration_address(self.name)


@dataclass(frozen=True)
class DesiredInstruction:
    ticket_id: int
    fields: dict[str, Any]  # the instruction as SEI will store it, batch defaults merged
    batch_id: str
    batch_name: str
    source: Source
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return instruction_address(self.ticket_id)


@dataclass(frozen=True)
class DesiredBatch:
    name: str
    batch_id: str
    instructions: tuple[DesiredInstruction, ...]
    source: Source
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        """Derived, never declared: every instruction of the model change, sent or not."""
        return len(self.instructions)


@dataclass(frozen=True)
class Window:
    """Writes to `api` only on `days` between `start` and `end` (HH:MM, end may be 24:00) in `timezone`."""

    api: str
    days: tuple[str, ...]
    start: str
    end: str
    timezone: str


@dataclass(frozen=True)
class Policy:
    name: str
    enforcement: str  # advisory | soft | hard
    limits: dict[str, float]
    windows: tuple[Window, ...]
    source: Source
    approvals: dict[str, Any] = field(default_factory=dict)  # requireApprovals: N, applierNotApprover: true


@dataclass(frozen=True)
class Approval:
    login: str
    at: str  # when the review was submitted (GitHub's time, UTC)
    commit: str | None  # the commit it approved


@dataclass(frozen=True)
class Approvals:
    """A pull request's approving reviews, as GitHub showed them when read (github/approvals.py).

    Only a review in state APPROVED, each reviewer's latest, on the planned commit counts: an approval
    of an earlier push does not approve what is planned now."""

    pull_request: int | None
    commit: str | None
    author: str | None = None
    approvals: tuple[Approval, ...] = ()
    applier: str | None = None  # who applies (known at apply, not at plan)
    error: str | None = None  # why they could not be read

    def others(self) -> tuple[Approval, ...]:
        """Approvals by people other than the pull request's author."""
        return tuple(a for a in self.approvals if a.login != self.author)

    def as_list(self) -> list[dict[str, Any]]:
        return [{"login": a.login, "at": a.at, "commit": a.commit} for a in self.approvals]


@dataclass(frozen=True)
class ManifestSet:
    """Everything the manifests declare, resolved and validated."""

    registrations: tuple[DesiredRegistration, ...]
    batches: tuple[DesiredBatch, ...]
    digest: str  # sha256 over the files' paths and bytes
    files: tuple[str, ...] = ()
    policies: tuple[Policy, ...] = ()

    @property
    def instructions(self) -> tuple[DesiredInstruction, ...]:
        return tuple(i for b in self.batches for i in b.instructions)


class Action(enum.StrEnum):
    UPDATE = "update"
    CREATE = "create"
    NO_OP = "no-op"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class FieldChange:
    """One field's before → after. `before` is None for an added sleeve, `after` None for a removal."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class IgnoredChange:
    address: str
    path: str
    reason: str


@dataclass(frozen=True)
class Change:
    address: str
    action: Action
    source: Source
    fields: tuple[FieldChange, ...] = ()
    removed_sleeves: tuple[int, ...] = ()  # accountIds sent in deletedSleeveTargets
    added_sleeves: int = 0
    # what apply sends: the SEI body of a create; for a registration, the merged object in a plan made
    # for review or --server-validate, and None in apply's plan (built just before its batch, from fresh)
    payload: dict[str, Any] | None = None
    fingerprint: str = ""  # of the live state this change was computed from
    registration_id: int | None = None  # of an update: what its batch reads fresh before it is sent

    @property
    def ticket(self) -> dict[str, Any]:
        """The instruction a create sends (its SEI body's `data`); {} for any other change."""
        return (self.payload or {}).get("data") or {} if self.action is Action.CREATE else {}

    @property
    def notional(self) -> float:
        """target × orderGenerationPrice of the instruction a create sends; 0 for any other change."""
        t = self.ticket
        return float(t.get("target") or 0) * float(t.get("orderGenerationPrice") or 0)


@dataclass(frozen=True)
class Submission:
    """One HTTP write apply will make. Orion batches form wave 1, SEI requests wave 2."""

    api: str  # "orion" | "sei"
    method: str
    path: str
    items: tuple[str, ...]  # addresses
    wave: int
    body: Any = None
    # an Orion batch: each item's live-state fingerprint at plan time; the batch reads its registrations
    # fresh just before it is sent and leaves out (stale) any whose fingerprint changed since
    fingerprints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    submissions: tuple[Submission, ...]
    unchanged: int
    ignored: tuple[IgnoredChange, ...] = ()
    policy_results: tuple = ()  # policy.PolicyResult, evaluated when the plan was made
    # set when `plan --now` / RECONCILER_NOW judged change windows as of another moment (what-if);
    # None: the real clock. Shown with the results, never carried into apply (which uses its clock).
    windows_as_of: str | None = None
    # a partial plan (`plan --changed-since`): what it covers, from plan/changes.py Scope.as_dict; None: full
    scope: dict[str, Any] | None = None

    def actionable(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is not Action.NO_OP)

    @property
    def conflicts(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is Action.CONFLICT)

    @property
    def has_changes(self) -> bool:
        return bool(self.actionable())
