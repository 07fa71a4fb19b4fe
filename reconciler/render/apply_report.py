"""ApplyResult → a text summary per item, and the JSON apply report (schemas/apply-report.schema.json)."""

from __future__ import annotations

from typing import Any

from reconciler import __version__

__all__ = ["REPORT_FORMAT_VERSION", "apply_report", "render_apply_text"]

REPORT_FORMAT_VERSION = "1"
_MARK = {"applied": "✓", "failed": "✗", "unknown": "?", "skipped": "·"}


def render_apply_text(result) -> str:
    c = result.counts()
    lines = []
    if result.recovered:
        lines.append("Recovered from an earlier run:")
        lines.extend(f"  {n}" for n in result.recovered)
        lines.append("")
    for i in result.items:
        ref = f" [{i.reference}]" if i.reference else ""
        lines.append(f"{_MARK[i.status]} {i.status:<8} {i.address}{ref}: {i.message}  # {i.source}")
    verdict = "converged: live state matches the manifests" if result.exit_code == 0 else (
        "NOT converged: the items above marked ✗ ? · need attention (rerun apply once the cause is fixed)")
    if result.interrupted:
        verdict += "; interrupted by Ctrl-C"
    lines.append("")
    lines.append(f"Apply: {c['applied']} applied, {c['failed']} failed, {c['unknown']} unknown, {c['skipped']} skipped; {verdict}.")
    return "\n".join(lines) + "\n"


def apply_report(result, *, plan_id: str, manifests_digest: str) -> dict[str, Any]:
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "tool_version": __version__,
        "plan_id": plan_id,
        "manifests_digest": manifests_digest,
        "started": result.started,
        "finished": result.finished,
        "converged": result.exit_code == 0,
        "interrupted": result.interrupted,
        "summary": result.counts(),
        "recovered": list(result.recovered),
        "items": [{"address": i.address, "action": i.action, "status": i.status, "message": i.message,
                   "source": {"file": i.source.file, "line": i.source.line}, "reference": i.reference}
                  for i in result.items],
    }
