"""History records rendered for auditors (render/history.py): CSV a spreadsheet cannot turn into
formulas, text with no raw control characters, the pack's index escaped."""

from __future__ import annotations

import csv
import io

from reconciler.render.history import history_csv, history_summary, history_text
from reconciler.render.html import render_history_html
from reconciler.state.history import Chain


def _change(seq: int, **kw) -> dict:
    return {
        "seq": seq,
        "kind": "change",
        "time": "2026-11-03T10:00:00Z",
        "address": "SleeveRegistration/a",
        "run": 1,
        "action": "update",
        "outcome": "applied",
        "operator": {"name": "alice", "ci_run_url": None},
        "commit": "abc",
        "pull_request": None,
        "approvers": [],
        "policy": {"results": [], "overrides": []},
        "emergency": False,
        "message": "ok",
        **kw,
    }


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted():
    rows = list(
        csv.reader(
            io.StringIO(history_csv([_change(1, message='=HYPERLINK("http://x")'), _change(2, message="@SUM(A1)")]))
        )
    )
    column = rows[0].index("message")
    assert rows[1][column] == '\'=HYPERLINK("http://x")' and rows[2][column] == "'@SUM(A1)"


def test_text_shows_control_characters_from_vendors_as_visible_escapes():
    text = history_text([_change(1, address="SleeveRegistration/\x1b[31mred\u202e")])
    assert "\x1b" not in text and "\u202e" not in text and "red" in text


def test_the_index_escapes_record_text_and_counts_per_month_and_operator():
    records = [
        _change(1, address="SleeveRegistration/<script>alert(1)</script>"),
        _change(2, time="2026-12-01T09:00:00Z", emergency=True, operator={"name": "bob"}),
    ]
    summary = history_summary(records)
    assert [m["month"] for m in summary["months"]] == ["2026-11", "2026-12"]
    assert {o["operator"]: o["changes"] for o in summary["operators"]} == {"alice": 1, "bob": 1}
    doc = {
        "period": "p",
        "exported_at": "t",
        "tool_version": "v",
        "chain": Chain(2, "f" * 64).as_dict(),
        "summary": summary,
        "changes": 2,
        "drift_opened": 0,
        "drift_closed": 0,
        "changes_list": records,
    }
    page = render_history_html(doc)
    assert "<script>" not in page and "&lt;script&gt;" in page and "Intact: 2 record(s)" in page
