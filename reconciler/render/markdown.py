"""Plan → markdown for pull-request comments: summary first, a table, details collapsed.

GitHub refuses comments over 65,536 characters; parts stay under 60,000 (MARKDOWN_LIMIT) and say
which part they are. A hidden marker lets a CI job find and update its own comment.
"""

from __future__ import annotations

import re

from reconciler.escaping import html_text, md_code, md_fence, md_text, terminal
from reconciler.model import Action, Change, Plan
from reconciler.plan.builder import plan_summary
from reconciler.render._values import describe_instruction, money, show, sleeve_line, summary_line

__all__ = ["MARKDOWN_LIMIT", "MARKER", "render_plan_markdown"]

MARKDOWN_LIMIT = 60_000
MARKER = "<!-- reconciler-plan -->"
_ICON = {Action.UPDATE: "~", Action.CREATE: "+", Action.CONFLICT: "!"}


def render_plan_markdown(plan: Plan, *, limit: int = MARKDOWN_LIMIT, environment: dict | None = None) -> list[str]:
    """One or more comment bodies, each under `limit` characters; `environment` is a saved plan's endpoints."""
    s = plan_summary(plan)
    head = [MARKER, f"### reconciler plan: {summary_line(s).removeprefix('Plan: ')}", ""]
    if environment:
        host = lambda url: str(url).split("://", 1)[-1].split("/", 1)[0]  # noqa: E731  (hosts only, never credentials)
        head += [
            f"Environment: **{md_text(environment.get('environment', 'custom'))}** · Orion "
            f"{md_code(host(environment.get('orion', '?')))} · SEI {md_code(host(environment.get('sei', '?')))}",
            "",
        ]
    if plan.scope is not None:  # a partial plan says so above everything else
        sc = plan.scope
        templates = ", ".join(md_code(t) for t in sc["changed_templates"])
        head.append(
            f"> **Partial plan** (`--changed-since` {md_code(sc['since'])}, {md_code(sc['base'][:12])}): "
            f"{len(sc['changed_files'])} changed manifest file(s)"
            + (f", and {sc['template_users']} file(s) taking the changed template(s) {templates}" if templates else "")
            + ". Live state is read for these only: drift elsewhere is not shown."
        )
        for gone in sc["no_longer_managed"][:20]:
            head.append(
                f"> - no longer managed here: {md_code(gone['address'])} (was in {md_code(gone['file'])}); "
                "nothing is removed at the vendor"
            )
        head.append("")
    if plan.actionable():
        head.append(
            f"Registrations touched: **{s['registrations_touched']}** · gross buy notional "
            f"**{money(s['gross_buy_notional'])}** · gross sell notional **{money(s['gross_sell_notional'])}**"
            f" · unchanged: {s['unchanged']}"
        )
    else:
        head.append(f"No changes. Live state matches the manifests ({s['unchanged']} resources unchanged).")
    removals = [c for c in plan.changes if c.removed_sleeves]
    tickets = [c for c in plan.changes if c.action is Action.CREATE]
    if removals or tickets:  # destructive and irreversible changes stand out, above the fold
        head.append("")
    if removals:
        n = sum(len(c.removed_sleeves) for c in removals)
        head.append(
            f"> ⚠️ **{n} sleeve removal{'s' * (n != 1)}**: "
            + ", ".join(
                f"{md_code(c.address)} (accountId {', '.join(map(str, c.removed_sleeves))})" for c in removals[:10]
            )
            + (" …" if len(removals) > 10 else "")
        )
    if tickets:
        head.append(
            f"> ⚠️ **{len(tickets)} trade instruction{'s' * (len(tickets) != 1)} to submit**: a submitted "
            f"ticket can never change (gross notional {money(s['gross_buy_notional'] + s['gross_sell_notional'])})"
        )
    failed = [r for r in plan.policy_results if not r.passed]
    if plan.policy_results:  # above the fold: a reviewer sees the guardrails before the changes
        head.append("")
        head.append(
            f"**Policies:** {len(plan.policy_results) - len(failed)} passed, {len(failed)} failed"
            + (
                ""
                if plan.windows_as_of is None
                else f" (change windows as of {md_code(plan.windows_as_of)}: what-if; apply uses the real clock)"
            )
        )
        for r in failed:
            head.append(
                f"- {'⛔' if r.enforcement == 'hard' else '⚠️'} {md_code(r.policy)} `{r.rule}` "
                f"({r.enforcement}): {md_text(r.message, 600)}"
            )
    if plan.conflicts:
        head.append("")
        head.append(
            f"> **Apply is blocked** by {len(plan.conflicts)} conflict(s): a submitted trade ticket cannot "
            "change. Make the manifest match SEI, or exclude the address."
        )
    head.append("")
    blocks: list[str] = []
    if plan.actionable():
        header = "| | Resource | Action | Detail | Source |\n|---|---|---|---|---|\n"
        rows = []
        for c in plan.actionable():
            detail = (
                describe_instruction(c)
                if c.action is Action.CREATE
                else (f"{len(c.fields)} field{'s' * (len(c.fields) != 1)}")
            )
            rows.append(
                f"| `{_ICON[c.action]}` | {md_code(c.address)} | {c.action.value} | {md_text(detail)} "
                f"| {md_code(c.source)} |\n"
            )
        # the table is cut into blocks of rows, each with its header, so it splits across comments too
        chunk: list[str] = []
        for row in rows:
            if chunk and len(header) + sum(map(len, chunk)) + len(row) > limit // 3:
                blocks.append(header + "".join(chunk))
                chunk = []
            chunk.append(row)
        blocks.append(header + "".join(chunk))
        for c in plan.actionable():
            if c.action is Action.CREATE:  # every field the ticket will carry: once sent, it never changes
                lines = [f"+ {terminal(f.path, 80)}: {show(f.after)}" for f in c.fields]
                what = f"{len(lines)} field{'s' * (len(lines) != 1)} sent"
            else:
                lines = _diff_lines(c)
                what = f"{len(c.fields)} change{'s' * (len(c.fields) != 1)}"
            body = "\n".join(lines)
            blocks.append(
                f"<details><summary><code>{_ICON[c.action]} {html_text(c.address)}</code> — {c.action.value}, "
                f"{what}</summary>\n\n{md_fence(body, 'diff')}\n</details>\n"
            )
    if plan.ignored:
        blocks.append(
            "<details><summary>Ignored by rules in reconciler.yaml</summary>\n\n"
            + "\n".join(f"- {md_code(i.address)} {md_code(i.path)}: {md_text(i.reason, 300)}" for i in plan.ignored)
            + "\n</details>\n"
        )
    return _split("\n".join(head), blocks, limit)


def _split(head: str, blocks: list[str], limit: int) -> list[str]:
    """Pack blocks into parts of at most `limit` characters, counting exactly what is joined."""
    notice_room = len("\n_Part 999 of 999: the plan is longer than one comment._\n")
    room = limit - len(head) - notice_room - 1  # the "\n" between head and body
    parts: list[list[str]] = [[]]
    size = 0
    for block in blocks:
        if len(block) > room:
            cut = block[: max(0, room - 200)].rsplit("\n", 1)[0]
            fence = re.search(r"^(`{3,})", cut, re.M)  # close the fence this block opened, whatever its length
            block = (
                cut + f"\n{fence.group(1) if fence else '```'}\n</details>\n\n_… truncated: this resource's "
                "changes exceed one comment; the full plan is in the CI run's job summary, and `reconciler show` "
                "prints the saved plan._\n"
            )
        cost = len(block) + (1 if parts[-1] else 0)  # blocks are joined with "\n"
        if parts[-1] and size + cost > room:
            parts.append([])
            size, cost = 0, len(block)
        parts[-1].append(block)
        size += cost
    total = len(parts)
    out = []
    for n, part in enumerate(parts, 1):
        notice = f"\n_Part {n} of {total}: the plan is longer than one comment._\n" if total > 1 else ""
        out.append(head + notice + "\n" + "\n".join(part))
    return out


def _diff_lines(c: Change) -> list[str]:
    """A change as a diff GitHub colours: `- before` in red, `+ after` in green (it leaves `~` lines plain)."""
    out = []
    for f in c.fields:
        if (sleeve := sleeve_line(f)) is not None:
            out.append(sleeve)
        else:  # a conflict: what SEI holds, then what the manifest says
            out.append(f"- {terminal(f.path, 200)}: {show(f.before)}")
            out.append(f"+ {terminal(f.path, 200)}: {show(f.after)}")
    return out
