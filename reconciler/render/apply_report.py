"""ApplyResult → a text summary per item, and the JSON apply report (schemas/apply-report.schema.json)."""

from __future__ import annotations

from typing import Any

from reconciler.escaping import terminal
from reconciler.version import __version__

__all__ = ["REPORT_FORMAT_VERSION", "apply_report", "render_apply_text"]

REPORT_FORMAT_VERSION = "2"
_MARK = {"applied": "✓", "failed": "✗", "unknown": "?", "skipped": "·"}


def render_apply_text(result, *, each_applied: bool = True) -> str:
    """Every item with its outcome, then the verdict. `each_applied=False` (a CI log) lists only the items
    that did not apply: the log grows with failures, not with the estate (the report has every item)."""
    c = result.counts()
    lines = []
    if result.recovered:
        lines.append("Recovered from an earlier run:")
        lines.extend(f"  {terminal(n, 400)}" for n in result.recovered)
        lines.append("")
    for i in result.items:
        if not each_applied and i.status.value == "applied":
            continue
        ref = f" [{terminal(i.reference)}]" if i.reference else ""
        lines.append(
            f"{_MARK[i.status.value]} {i.status.value:<8} {terminal(i.address)}{ref}: {terminal(i.message, 600)}"
            f"  # {terminal(i.source)}"
        )
    if result.exit_code != 0:
        verdict = "NOT converged: the items above marked ✗ ? · need attention (rerun apply once the cause is fixed)"
    elif result.unchecked:
        n = result.selected
        verdict = (
            f"converged for the {n} selected resource{'s' * (n != 1)}; {result.unchecked} other"
            f"{'s' * (result.unchecked != 1)} left out by --target/--exclude/--selector "
            f"{'were' if result.unchecked != 1 else 'was'} not checked and may still differ"
        )
    else:
        verdict = "converged: live state matches the manifests"
    if result.interrupted:
        verdict += "; interrupted (Ctrl-C or SIGTERM)"
    if result.error:
        verdict += f"; stopped early: {terminal(result.error, 300)}"
    if not each_applied and c["applied"]:
        lines.append(f"✓ {c['applied']} item(s) applied, not listed one by one here (every item is in --report)")
    lines.append("")
    counts = f"{c['applied']} applied, {c['failed']} failed, {c['unknown']} unknown, {c['skipped']} skipped"
    lines.append(f"Apply: {counts}; {verdict}.")
    return "\n".join(lines) + "\n"


def apply_report(
    result, *, plan_id: str, manifests_digest: str, endpoints: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "tool_version": __version__,
        "plan_id": plan_id,
        "manifests_digest": manifests_digest,
        "endpoints": {k: v for k, v in (endpoints or {}).items() if k != "environment"},
        "environment": (endpoints or {}).get("environment"),
        "started": result.started,
        "finished": result.finished,
        "converged": result.exit_code == 0,
        "unchecked": result.unchecked,  # declared resources the selection left out: not checked
        "interrupted": result.interrupted,
        "error": result.error,
        "summary": result.counts(),
        "recovered": list(result.recovered),
        "items": [
            {
                "address": i.address,
                "action": i.action,
                "status": i.status.value,
                "message": i.message,
                "source": {"file": i.source.file, "line": i.source.line},
                "reference": i.reference,
            }
            for i in result.items
        ],
    }
