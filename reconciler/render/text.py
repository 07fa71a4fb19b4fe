"""Plan → Terraform-like text: `+ ~ - !` markers, changed fields only (before → after)."""

from __future__ import annotations

from reconciler.escaping import terminal
from reconciler.model import Action, Change, Plan
from reconciler.plan.builder import plan_summary
from reconciler.plan.explain import explain_stages
from reconciler.plan.stages import Recover, Stage, build_stages
from reconciler.render._values import (
    describe_instruction,
    show,
    sleeve_line,
    summary_line,
    ticket_details,
    totals_line,
)

__all__ = ["field_lines", "partial_lines", "render_plan_text"]

_MARK = {Action.UPDATE: "~", Action.CREATE: "+", Action.CONFLICT: "!"}


def field_lines(c: Change) -> list[str]:
    lines = []
    for f in c.fields:
        if (sleeve := sleeve_line(f)) is not None:
            lines.append(sleeve)
        else:
            mark = "!" if c.action is Action.CONFLICT else "~"
            lines.append(f"{mark} {terminal(f.path, 200)}: {show(f.before)} → {show(f.after)}")
    return lines


_FAILED_MARK = {"hard": "✗", "soft": "✗", "advisory": "!"}


def policy_lines(plan: Plan) -> list[str]:
    """The policy results: which rule, which addresses, by how much."""
    if not plan.policy_results:
        return []
    out = [
        "Policies:"
        if plan.windows_as_of is None
        else f"Policies (change windows as of {plan.windows_as_of}, --now: what-if only; apply uses the real clock):"
    ]
    for r in plan.policy_results:
        mark = "✓" if r.passed else _FAILED_MARK[r.enforcement]
        verdict = (
            "passed"
            if r.passed
            else {
                "hard": "FAILED (hard: apply refuses)",
                "soft": f"FAILED (soft: apply refuses unless --override-policy {r.policy} --reason …)",
                "advisory": "failed (advisory: a warning)",
            }[r.enforcement]
        )
        out.append(f"  {mark} {terminal(r.policy)} {r.rule}: {verdict} — {terminal(r.message, 600)}")
    out.append("")
    return out


def partial_lines(plan: Plan) -> list[str]:
    """What a partial plan (--changed-since) covers, and what it does not, before anything else."""
    scope = plan.scope
    if scope is None:
        return []
    out = [
        f"Partial plan: the resources of {len(scope['changed_files'])} manifest file(s) changed since "
        f"{terminal(scope['since'])} ({terminal(scope['base'][:12])})"
        + (
            f", and the {scope['template_users']} file(s) taking the changed template(s) "
            f"{', '.join(terminal(t) for t in scope['changed_templates'])}"
            if scope["changed_templates"]
            else ""
        )
        + ". Live state is read for them only: drift elsewhere is not shown (a full plan or `drift` shows it)."
    ]
    for gone in scope["no_longer_managed"]:
        out.append(
            f"  no longer managed here: {terminal(gone['address'])} (was in {terminal(gone['file'])}); nothing is "
            "removed at the vendor"
        )
    out.append("")
    return out


def render_plan_text(plan: Plan, stages: tuple[Stage, ...] | None = None, *, each: bool = True) -> str:
    """The plan, and the stages apply will run for it (given, or built with nothing in doubt).
    `each=False` (apply's log in CI): the counts and totals, not a line per change and submission."""
    stages = stages if stages is not None else build_stages(plan)
    s = plan_summary(plan)
    in_doubt = stages[0] if stages and isinstance(stages[0], Recover) and stages[0].busy else None
    out: list[str] = partial_lines(plan)
    actionable = plan.actionable()
    if not actionable:
        out.append("No changes. Live state matches the manifests.")
    elif not each:
        out.append(
            f"reconciler will make {len(actionable)} change(s): `reconciler plan` lists each one; this log keeps to "
            "the summary, and the apply report has every item."
        )
        out.append("")
    else:
        out.append("reconciler will perform these actions (+ create, ~ update, - remove, ! conflict):")
        out.append("")
        for c in actionable:
            if c.action is Action.CREATE:
                out.append(f"  + {c.address}  {describe_instruction(c)}  # {c.source}")
                rest = ticket_details(c)
                if rest:  # the rest of what the ticket will carry, compact: it can never change once sent
                    out.append("      " + ", ".join(f"{terminal(k, 80)} {v}" for k, v in rest))
                continue
            title = (
                "conflict: already at SEI with different values; a submitted ticket cannot change"
                if c.action is Action.CONFLICT
                else "will be updated"
            )
            out.append(f"  {_MARK[c.action]} {c.address} {title}  # {c.source}")
            out.extend(f"      {line}" for line in field_lines(c))
            if c.action is Action.CONFLICT:
                out.append(f"      # blocks apply: make the manifest match SEI, or --exclude {c.address}")
            out.append("")
        if out[-1] != "":
            out.append("")
    if actionable or in_doubt:
        if not actionable:
            out.append("")
        out.extend(explain_stages(stages, each=each))
        out.append("")
    out.extend(policy_lines(plan))
    out.append(summary_line(s))
    if s["create"] or s["update"]:
        out.append(totals_line(s))
    out.append(f"Unchanged: {s['unchanged']} (registrations matching, trade instructions already at SEI).")
    if plan.ignored:
        out.append(f"Ignored by rules in reconciler.yaml ({len(plan.ignored)}):")
        out.extend(f"  {terminal(i.address)} {terminal(i.path, 200)}: {terminal(i.reason, 300)}" for i in plan.ignored)
    if plan.conflicts:
        out.append(f"Apply is blocked by {len(plan.conflicts)} conflict{'s' * (len(plan.conflicts) != 1)}.")
    return "\n".join(out) + "\n"
