"""DriftReport → text, markdown and the JSON document (schemas/drift.schema.json)."""

from __future__ import annotations

from typing import Any

from reconciler.render._values import show

__all__ = ["DRIFT_FORMAT_VERSION", "drift_to_document", "render_drift_markdown", "render_drift_text"]

DRIFT_FORMAT_VERSION = "1"
_STATUS = {"drifted": "~", "missing": "-", "conflict": "!"}


def drift_to_document(report) -> dict[str, Any]:
    return {
        "format_version": DRIFT_FORMAT_VERSION,
        "generated_at": report.generated_at,
        "tool_version": report.tool_version,
        "manifests_digest": report.manifests_digest,
        "summary": {"checked": report.checked, "findings": len(report.findings),
                    "drifted": sum(1 for f in report.findings if f.status == "drifted"),
                    "missing": sum(1 for f in report.findings if f.status == "missing"),
                    "conflict": sum(1 for f in report.findings if f.status == "conflict"),
                    "ignored": len(report.ignored), "expired_rules": len(report.expired_rules)},
        "findings": [{
            "address": f.address, "kind": f.kind, "status": f.status,
            "source": {"file": f.source.file, "line": f.source.line},
            "fields": [{"path": c.path, "before": c.before, "after": c.after} for c in f.fields],
            "attribution": {"editedBy": f.edited_by, "editedDate": f.edited_date, "history": f.history},
            "expired_rules": f.expired_rules,
            "allocation": f.allocation,
        } for f in report.findings],
        "ignored": report.ignored,
        "expired_rules": report.expired_rules,
    }


def _field_line(c) -> str:
    # before is live (what is), after is declared (what the manifest wants)
    return f"{c.path}: live {show(c.before)}, manifest {show(c.after)}"


def render_drift_text(report) -> str:
    out = []
    if not report.findings:
        out.append(f"No drift: {report.checked} managed resources match their manifests.")
    for f in report.findings:
        who = f" — last edited by {f.edited_by} at {f.edited_date}" if f.edited_by else (
            f" — changed at {f.edited_date}" if f.edited_date else "")
        title = {"drifted": "differs from its manifest", "missing": "is declared but missing live",
                 "conflict": "is at SEI with values other than the manifest's"}[f.status]
        out.append(f"{_STATUS[f.status]} {f.address} {title}{who}  # {f.source}")
        out.extend(f"    {_field_line(c)}" for c in f.fields)
        for h in f.history:
            if "note" in h:
                out.append(f"    history: {h['note']}")
                continue
            changes = ", ".join(f"{c['field']} {show(c.get('before'))} → {show(c.get('after'))}" for c in h["changes"])
            out.append(f"    history: {h['editedDate']} {h['editedBy']}: {changes}")
        for e in f.expired_rules:
            out.append(f"    note: the ignore rule for {e['path']} ('{e['reason']}') expired on {e['expired']}")
        out.append("")
    if report.ignored:
        out.append(f"Ignored by rules in reconciler.yaml ({len(report.ignored)}):")
        out.extend(f"  {i['address']} {i['path']}: {i['reason']}" + (f" (until {i['expires']})" if i["expires"] else "")
                   for i in report.ignored)
    for r in report.expired_rules:
        out.append(f"Expired ignore rule ({r['expired']}): {r['address']} {r['field']} — '{r['reason']}'; "
                   "it no longer hides drift")
    doc = drift_to_document(report)["summary"]
    out.append(f"Drift: {doc['findings']} finding(s) — {doc['drifted']} drifted, {doc['missing']} missing, "
               f"{doc['conflict']} conflicting — of {doc['checked']} managed resources; {doc['ignored']} ignored.")
    return "\n".join(out) + "\n"


def render_drift_markdown(report) -> str:
    doc = drift_to_document(report)["summary"]
    lines = ["<!-- reconciler-drift -->",
             f"### reconciler drift: {doc['findings']} finding(s) in {doc['checked']} managed resources", ""]
    if not report.findings:
        lines.append("No drift: live state matches the manifests.")
    else:
        lines += ["| | Resource | Status | Last edited | Source |", "|---|---|---|---|---|"]
        for f in report.findings:
            edited = f"{f.edited_by or ''} {f.edited_date or ''}".strip() or "—"
            lines.append(f"| `{_STATUS[f.status]}` | `{f.address}` | {f.status} | {edited} | `{f.source}` |")
        lines.append("")
        for f in report.findings:
            if f.fields:
                body = "\n".join(_field_line(c) for c in f.fields)
                lines.append(f"<details><summary><code>{f.address}</code></summary>\n\n```\n{body}\n```\n</details>\n")
    if report.ignored:
        lines.append(f"_{len(report.ignored)} difference(s) hidden by ignore rules in reconciler.yaml._")
    for r in report.expired_rules:
        lines.append(f"_Expired ignore rule ({r['expired']}): `{r['address']}` `{r['field']}` — {r['reason']}._")
    return "\n".join(lines) + "\n"
