"""DriftReport → text, markdown and the JSON document (schemas/drift.schema.json)."""

from __future__ import annotations

from typing import Any

from reconciler.escaping import VENDOR_TEXT_LIMIT as _LIMIT
from reconciler.escaping import html_text, md_code, md_fence, md_text, terminal
from reconciler.render._values import show

__all__ = [
    "DRIFT_FORMAT_VERSION",
    "drift_to_document",
    "render_drift_markdown",
    "render_drift_openmetrics",
    "render_drift_text",
]

DRIFT_FORMAT_VERSION = "1"
_STATUS = {"drifted": "~", "missing": "-", "conflict": "!"}


def drift_to_document(report) -> dict[str, Any]:
    return {
        "format_version": DRIFT_FORMAT_VERSION,
        "generated_at": report.generated_at,
        "tool_version": report.tool_version,
        "manifests_digest": report.manifests_digest,
        "audit": report.audit,
        "summary": {
            "checked": report.checked,
            "findings": len(report.findings),
            "drifted": sum(1 for f in report.findings if f.status == "drifted"),
            "missing": sum(1 for f in report.findings if f.status == "missing"),
            "conflict": sum(1 for f in report.findings if f.status == "conflict"),
            "ignored": len(report.ignored),
            "expired_rules": len(report.expired_rules),
        },
        "findings": [
            {
                "address": f.address,
                "kind": f.kind,
                "status": f.status,
                "source": {"file": f.source.file, "line": f.source.line},
                "fields": [{"path": c.path, "before": c.before, "after": c.after} for c in f.fields],
                "attribution": {
                    "editedBy": f.edited_by,
                    "editedDate": f.edited_date,  # the vendor's own string, offset and all
                    "editedDateUtc": f.edited_utc,
                    "history": f.history,
                },
                "expired_rules": f.expired_rules,
                "allocation": f.allocation,
                "trade": f.trade,
            }
            for f in report.findings
        ],
        "ignored": report.ignored,
        "expired_rules": report.expired_rules,
    }


def _field_line(c) -> str:
    # before is live (what is), after is declared (what the manifest wants)
    return f"{terminal(c.path, 200)}: live {show(c.before)}, manifest {show(c.after)}"


def _history_line(h: dict) -> str:
    if "note" in h:
        return terminal(h["note"], _LIMIT * 2)
    changes = ", ".join(
        f"{terminal(c.get('field'), 200)} {show(c.get('before'))} → {show(c.get('after'))}"
        for c in h.get("changes") or []
    )
    when = h.get("editedDateUtc") or h.get("editedDate")
    return f"{terminal(when, 40)} {terminal(h.get('editedBy'), _LIMIT)}: {changes}"


def _audit_line(report) -> str:
    a = report.audit or {}
    parts = [
        f"audited {a.get('generated_at', report.generated_at)} (UTC)",
        f"environment {a.get('environment', '?')}",
        f"Orion {a.get('orion', '?')}",
        f"SEI {a.get('sei', '?')}",
        f"manifests commit {a.get('commit') or '(not in Git)'}",
        f"reconciler {a.get('tool_version', '?')}",
        f"by {a.get('operator', '?')}",
    ]
    if a.get("ci_run_url"):
        parts.append(f"run {a['ci_run_url']}")
    return " · ".join(parts)


def _trade_line(t: dict) -> str:
    notional = f" = ${t['notional']:,.2f}" if t.get("notional") is not None else ""
    return (
        f"{terminal(t.get('side'), 10)} {terminal(t.get('quantity'), 20)} {terminal(t.get('ticker'), 20)} @ "
        f"{terminal(t.get('price'), 20)}{notional} (batch {terminal(t.get('batchId'), 80)})"
    )


def render_drift_text(report) -> str:
    out = [terminal(_audit_line(report), 1000), ""]
    if not report.findings:
        out.append(f"No drift: {report.checked} managed resources match their manifests.")
    for f in report.findings:
        who = (
            f" — last edited by {terminal(f.edited_by, _LIMIT)} at {terminal(f.edited_utc, 40)}"
            if f.edited_by
            else (f" — changed at {terminal(f.edited_utc, 40)}" if f.edited_date else "")
        )
        title = {
            "drifted": "differs from its manifest",
            "missing": "is declared but missing live",
            "conflict": "is at SEI with values other than the manifest's",
        }[f.status]
        out.append(f"{_STATUS[f.status]} {terminal(f.address)} {title}{who}  # {f.source}")
        out.extend(f"    {_field_line(c)}" for c in f.fields)
        if f.trade:
            out.append(f"    not at SEI: {_trade_line(f.trade)}")
        out.extend(f"    history: {_history_line(h)}" for h in f.history)
        for e in f.expired_rules:
            out.append(
                f"    note: the ignore rule for {terminal(e['path'], 200)} ('{terminal(e['reason'], 300)}') "
                f"expired on {e['expired']}"
            )
        out.append("")
    if report.ignored:
        out.append(f"Ignored by rules in reconciler.yaml ({len(report.ignored)}):")
        out.extend(
            f"  {terminal(i['address'])} {terminal(i['path'], 200)}: {terminal(i['reason'], 300)}"
            + (f" (until {i['expires']})" if i["expires"] else "")
            for i in report.ignored
        )
    for r in report.expired_rules:
        out.append(
            f"Expired ignore rule ({r['expired']}): {terminal(r['address'])} {terminal(r['field'], 200)} — "
            f"'{terminal(r['reason'], 300)}'; it no longer hides drift"
        )
    doc = drift_to_document(report)["summary"]
    out.append(
        f"Drift: {doc['findings']} finding(s) — {doc['drifted']} drifted, {doc['missing']} missing, "
        f"{doc['conflict']} conflicting — of {doc['checked']} managed resources; {doc['ignored']} ignored."
    )
    return "\n".join(out) + "\n"


def render_drift_markdown(report) -> str:
    """Markdown for a drift issue: every interpolated string through md_text / md_code / md_fence."""
    doc = drift_to_document(report)["summary"]
    lines = [
        "<!-- reconciler-drift -->",
        f"### reconciler drift: {doc['findings']} finding(s) in {doc['checked']} managed resources",
        "",
        md_text(_audit_line(report), 1000),
        "",
    ]
    if not report.findings:
        lines.append("No drift: live state matches the manifests.")
    else:
        lines += ["| | Resource | Status | Last edited | Source |", "|---|---|---|---|---|"]
        for f in report.findings:
            edited = f"{f.edited_by or ''} {f.edited_utc or ''}".strip()
            lines.append(
                f"| `{_STATUS[f.status]}` | {md_code(f.address)} | {f.status} | "
                f"{md_text(edited, _LIMIT) if edited else '—'} | {md_code(f.source)} |"
            )
        lines.append("")
        for f in report.findings:
            if f.fields or f.history or f.trade:
                body = "\n".join(
                    [_field_line(c) for c in f.fields]
                    + [f"history: {_history_line(h)}" for h in f.history]
                    + ([f"not at SEI: {_trade_line(f.trade)}"] if f.trade else [])
                )
                # a <summary> is raw HTML, where backticks protect nothing: HTML escaping there
                lines.append(
                    f"<details><summary><code>{html_text(f.address)}</code></summary>\n\n{md_fence(body)}\n</details>\n"
                )
    if report.ignored:
        lines.append(f"_{len(report.ignored)} difference(s) hidden by ignore rules in reconciler.yaml:_")
        lines += [
            f"- {md_code(i['address'])} {md_code(i['path'], 200)}: {md_text(i['reason'], 300)}"
            + (f" (until {md_text(i['expires'])})" if i.get("expires") else "")
            for i in report.ignored
        ]
    for r in report.expired_rules:
        lines.append(
            f"_Expired ignore rule ({md_text(r['expired'])}): {md_code(r['address'])} {md_code(r['field'])} — "
            f"{md_text(r['reason'], 300)}._"
        )
    return "\n".join(lines) + "\n"


def render_drift_openmetrics(report) -> str:
    """OpenMetrics text for node_exporter's textfile collector or a Pushgateway."""
    import datetime as dt

    kinds = ("registration", "instruction")
    drifted = {k: sum(1 for f in report.findings if f.kind == k) for k in kinds}
    statuses = {s: sum(1 for f in report.findings if f.status == s) for s in ("drifted", "missing", "conflict")}
    managed = {k: report.checked_by_kind.get(k, 0) for k in kinds}
    when = dt.datetime.fromisoformat(report.generated_at).timestamp()
    out = [
        "# HELP reconciler_drift_resources Managed resources whose live state differs from their manifest.",
        "# TYPE reconciler_drift_resources gauge",
    ]
    out += [f'reconciler_drift_resources{{kind="{k}"}} {drifted[k]}' for k in kinds]
    out += ["# HELP reconciler_drift_findings Drift findings by status.", "# TYPE reconciler_drift_findings gauge"]
    out += [f'reconciler_drift_findings{{status="{s}"}} {n}' for s, n in statuses.items()]
    out += [
        "# HELP reconciler_drift_ignored Differences hidden by ignore rules.",
        "# TYPE reconciler_drift_ignored gauge",
        f"reconciler_drift_ignored {len(report.ignored)}",
    ]
    out += [
        "# HELP reconciler_managed_resources Resources the manifests declare.",
        "# TYPE reconciler_managed_resources gauge",
    ]
    out += [f'reconciler_managed_resources{{kind="{k}"}} {managed[k]}' for k in kinds]
    out += [
        "# HELP reconciler_last_audit_timestamp_seconds When this audit read live state.",
        "# TYPE reconciler_last_audit_timestamp_seconds gauge",
        f"reconciler_last_audit_timestamp_seconds {when:.3f}",
        "# EOF",
    ]
    return "\n".join(out) + "\n"
