"""History records → what an auditor reads: a text list, one run's evidence, CSV for a spreadsheet
sample, and the figures of an evidence pack's index (the HTML itself is render/html.py's).

Records are data (state/history.py); every string from them passes the terminal escaping here, and
CSV cells that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR) are prefixed with
`'`, so a vendor's or a manifest's text can never become a formula in the auditor's workbook.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from typing import Any

from reconciler.escaping import terminal

__all__ = ["CSV_COLUMNS", "history_csv", "history_summary", "history_text", "run_text"]

CSV_COLUMNS = (
    "seq",
    "time",
    "kind",
    "address",
    "run",
    "action",
    "outcome",
    "event",
    "operator",
    "ci_run_url",
    "commit",
    "pull_request",
    "approvers",
    "plan_digest",
    "emergency",
    "fields",
    "vendor",
    "message",
    "hash",
    "previous",
)


def _operator(record: dict[str, Any]) -> str:
    op = record.get("operator") or {}
    return str(op.get("name") or "") if isinstance(op, dict) else str(op)


def _ended(record: dict[str, Any]) -> str:
    return str(record.get("how") or "")


def _line(record: dict[str, Any]) -> str:
    time, address = record.get("time", "?"), record.get("address", "?")
    if record.get("kind") == "drift":
        if record.get("event") == "seen":
            who = record.get("edited_by") or "unknown"
            detail = (
                f"drift seen: {record.get('status', 'drifted')}, edited by {who} at {record.get('edited_at') or '?'}"
            )
        else:
            detail = (
                f"drift ended: {_ended(record)} (first seen {record.get('first_seen')}, "
                f"last seen {record.get('last_seen')})"
            )
        return terminal(f"#{record.get('seq')} {time}  {address}  {detail}")
    flag = "  EMERGENCY" if record.get("emergency") else ""
    pr = f", PR #{record['pull_request']}" if record.get("pull_request") else ""
    return terminal(
        f"#{record.get('seq')} {time}  {address}  {record.get('action')} {record.get('outcome')}  "
        f"run {record.get('run')} by {_operator(record)} (commit {record.get('commit') or 'unknown'}{pr}){flag}"
    )


def history_text(records: list[dict[str, Any]]) -> str:
    if not records:
        return "No history records match."
    changes = sum(1 for r in records if r.get("kind") == "change")
    lines = [_line(r) for r in records]
    lines.append(f"{len(records)} record(s): {changes} change, {len(records) - changes} drift.")
    return "\n".join(lines)


def run_text(run: int, records: list[dict[str, Any]]) -> str:
    """One change run's full evidence, as `history show RUN` prints it."""
    if not records:
        return f"No change records for run {run}."
    first = records[0]
    op = first.get("operator") or {}
    approvers = ", ".join(f"{a.get('login')} at {a.get('at')}" for a in first.get("approvers") or []) or "none recorded"
    head = [
        f"Run {run}  {first.get('time')}  environment {first.get('environment') or '-'}",
        f"  operator: {op.get('name')} (OS user {op.get('os_user')}, CI actor {op.get('ci_actor') or '-'})",
        f"  CI run: {op.get('ci_run_url') or '-'}",
        f"  commit: {first.get('commit') or 'unknown'}; pull request: {first.get('pull_request') or '-'}",
        f"  approvers: {approvers}",
        f"  plan digest: {first.get('plan_digest')}",
        f"  emergency: {'yes' if first.get('emergency') else 'no'}",
    ]
    policy = first.get("policy") or {}
    for r in policy.get("results") or []:
        head.append(
            f"  policy {r.get('policy')}: {'passed' if r.get('passed') else 'NOT passed'} {r.get('detail', '')}"
        )
    for o in policy.get("overrides") or []:
        head.append(f"  override of {o.get('policy')} by {o.get('who')}: {o.get('reason')}")
    body = []
    for r in records:
        vendor = ", ".join(f"{k} {v}" for k, v in (r.get("vendor") or {}).items())
        body.append(f"#{r.get('seq')} {r.get('address')}: {r.get('action')} {r.get('outcome')}  {vendor}")
        body.append(f"    {r.get('message')}")
        for f in r.get("fields") or []:
            body.append(f"    {f.get('path')}: {json.dumps(f.get('before'))} → {json.dumps(f.get('after'))}")
    return "\n".join(terminal(line) for line in head + body)


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else "" if value is None else json.dumps(value, ensure_ascii=False)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text  # a spreadsheet runs these as formulas
    return text


def history_csv(records: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        row = {**r, "operator": _operator(r), "ci_run_url": (r.get("operator") or {}).get("ci_run_url")}
        if r.get("kind") == "drift":
            row["outcome"] = _ended(r) or r.get("status")
        row["approvers"] = [a.get("login") for a in r.get("approvers") or []] or None
        writer.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()


def history_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the evidence pack's index shows: per month, per operator, emergencies, drift opened/closed."""
    months: Counter[str] = Counter()
    operators: Counter[str] = Counter()
    opened: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    for r in records:
        month = str(r.get("time", ""))[:7]
        if r.get("kind") == "change":
            months[month] += 1
            operators[_operator(r)] += 1
        elif r.get("event") == "seen":
            opened[month] += 1
        else:
            closed[month] += 1
    all_months = sorted(set(months) | set(opened) | set(closed))
    return {
        "months": [
            {"month": m, "changes": months[m], "drift_opened": opened[m], "drift_closed": closed[m]} for m in all_months
        ],
        "operators": [{"operator": o, "changes": n} for o, n in sorted(operators.items())],
        "emergencies": [r for r in records if r.get("kind") == "change" and r.get("emergency")],
        "drift": [r for r in records if r.get("kind") == "drift"],
    }
