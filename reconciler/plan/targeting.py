"""What a plan covers: --target / --exclude (addresses, globs) and --selector k=v (labels).

A narrowed plan never passes for a full one: every pattern that matches nothing is reported
(`TargetingTally`, fed one resource at a time so a streamed plan need not keep the addresses), and the
caller refuses a selection that is empty altogether.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from reconciler.config.ignore import glob_match
from reconciler.errors import ConfigError
from reconciler.model import DesiredInstruction, DesiredRegistration, ManifestSet

__all__ = ["Targeting", "TargetingTally", "narrow", "select", "selection_line", "targeting_warnings"]


@dataclass(frozen=True)
class Targeting:
    """--target / --exclude (addresses or globs) and --selector k=v (labels; all must match)."""

    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    selectors: tuple[tuple[str, str], ...] = ()

    def wants(self, address: str, labels: dict[str, str]) -> bool:
        if self.targets and not any(glob_match(address, t) for t in self.targets):
            return False
        if any(glob_match(address, x) for x in self.excludes):
            return False
        return all(labels.get(k) == v for k, v in self.selectors)


class TargetingTally:
    """What the user asked for that matches nothing, so a narrowed plan never passes for a full one;
    fed one resource at a time, so a streamed plan need not keep the addresses.

    The caller refuses a selection that is empty altogether."""

    def __init__(self, targeting: Targeting) -> None:
        self.t = targeting
        self.unmatched = {("--target", p) for p in targeting.targets} | {("--exclude", p) for p in targeting.excludes}
        self.unmatched_selectors = set(targeting.selectors)

    def see(self, address: str, labels: dict[str, str]) -> None:
        if self.unmatched:
            self.unmatched -= {(f, p) for f, p in self.unmatched if glob_match(address, p)}
        if self.unmatched_selectors:
            self.unmatched_selectors -= {(k, v) for k, v in self.unmatched_selectors if labels.get(k) == v}

    def warnings(self) -> list[str]:
        """In the order given: targets, excludes, then selectors."""
        out = [
            f"--target {p} matches no resource in the manifests"
            for p in self.t.targets
            if ("--target", p) in self.unmatched
        ]
        out += [
            f"--exclude {p} matches no resource in the manifests"
            for p in self.t.excludes
            if ("--exclude", p) in self.unmatched
        ]
        out += [
            f"--selector {k}={v} matches no resource's labels"
            for k, v in self.t.selectors
            if (k, v) in self.unmatched_selectors
        ]
        return out


def targeting_warnings(manifests: ManifestSet, targeting: Targeting) -> list[str]:
    tally = TargetingTally(targeting)
    for r in manifests.registrations:
        tally.see(r.address, r.labels)
    for i in manifests.instructions:
        tally.see(i.address, i.labels)
    return tally.warnings()


def select(manifests: ManifestSet, targeting: Targeting) -> tuple[list[DesiredRegistration], list[DesiredInstruction]]:
    regs = [r for r in manifests.registrations if targeting.wants(r.address, r.labels)]
    instrs = [i for i in manifests.instructions if targeting.wants(i.address, i.labels)]
    return regs, instrs


def selection_line(targeting: Targeting, selected: int, total: int) -> str | None:
    """What a --target/--exclude/--selector selection covers, for the output (None without one).
    Raises ConfigError when it leaves nothing to check: nothing is planned or applied then."""
    if not (targeting.targets or targeting.excludes or targeting.selectors):
        return None
    if not selected and total:
        raise ConfigError("--target/--exclude/--selector leave no resource to check; nothing was planned")
    return f"Targeting: {selected} of {total} resources are checked; the rest are not."


def narrow(manifests: ManifestSet, targeting: Targeting) -> ManifestSet:
    """The manifests as the selection sees them: its registrations, and its instructions in their batches."""
    regs, instrs = select(manifests, targeting)
    kept = {i.address for i in instrs}
    batches = tuple(
        replace(b, instructions=tuple(i for i in b.instructions if i.address in kept))
        for b in manifests.batches
        if any(i.address in kept for i in b.instructions)
    )
    return replace(manifests, registrations=tuple(regs), batches=batches)
