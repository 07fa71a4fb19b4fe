"""The escaping layer of each format holds for any string a vendor, a manifest or a file name can carry:
terminal text gains no raw control character and no line; markdown no live HTML and no mention."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.escaping import html_text, md_code, md_fence, md_text
from reconciler.render.markdown import MARKER, render_plan_markdown

from ..helpers.escaping import HOSTILE, html_tags, mentions, raw_controls


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_escapes_never_produce_live_html_ormentions(value):
    doc = (
        f"| a | b |\n|---|---|\n| {md_code(value)} | {md_text(value)} |\n\n"
        f"<details><summary>{html_text(value)}</summary>\n\n{md_fence(value + chr(10) + value)}\n</details>\n"
    )
    assert [t for t in html_tags(doc) if t not in ("details", "/details", "summary", "/summary", "!--")] == []
    assert html_tags(doc).count("details") == 1 == html_tags(doc).count("/details")
    assert mentions(doc) == []
    assert raw_controls(doc.replace("\n", "")) == []


_NASTY = st.lists(
    st.sampled_from(
        list("ab<>&@`|*_[]()#\n\t\x1b\x07\x00\u202e\u200b\u2066 /\\\"'")
        + ["</details>", "<img src=x>", "@org", "```", "<!--", "-->"]
    ),
    max_size=12,
).map("".join)


def _renderings(value: str):
    from reconciler.audit.drift import DriftReport, Finding
    from reconciler.model import Action, Change, FieldChange, Plan, Source
    from reconciler.render import render_plan_markdown, render_plan_text
    from reconciler.render.drift_report import render_drift_markdown, render_drift_text
    from reconciler.render.html import render_drift_html

    src = Source(f"m/{value}.yaml", 3)
    change = Change("SleeveRegistration/x", Action.UPDATE, src, (FieldChange(f"accountSleeves[{value}].t", value, 1),))
    ticket = Change(
        "TradeInstruction/1",
        Action.CREATE,
        src,
        payload={"data": {"side": "Buy", "target": 1, "ticker": value, "batchId": value, "batchSize": 1}},
    )
    plan = Plan((change, ticket), (), 0)
    finding = Finding(
        "SleeveRegistration/x",
        "registration",
        "drifted",
        src,
        (FieldChange(value, value, 2),),
        value,
        value,
        [
            {
                "editedBy": value,
                "editedDate": value,
                "changeType": "Update",
                "changes": [{"field": value, "before": value, "after": 1}],
            }
        ],
    )
    report = DriftReport("2026-12-01T00:00:00+00:00", "0", "d", [finding], [], [], 1)
    return (
        (render_plan_text(plan), render_drift_text(report)),
        (*render_plan_markdown(plan), render_drift_markdown(report)),
        render_drift_html(report),
    )


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=_NASTY)
def test_random_strings_keep_the_escaping_invariant_in_every_format(value):
    texts, mds, html = _renderings(value)
    plain_texts, plain_mds, _ = _renderings("a")
    for text, plain in zip(texts, plain_texts):
        assert raw_controls(text) == []
        assert len(text.splitlines()) == len(plain.splitlines())  # no value can add a line of its own
    for md, plain in zip(mds, plain_mds):
        assert raw_controls(md.replace("\n", "")) == []
        assert [
            t for t in html_tags(md) if t not in ("details", "/details", "summary", "/summary", "code", "/code", "!--")
        ] == [], (value, md)
        assert html_tags(md).count("details") == html_tags(plain).count("details")
        assert mentions(md) == []
    assert raw_controls(html.replace("\n", "")) == []
    assert "<img" not in html and html.count("<details") == _renderings("a")[2].count("<details")


@pytest.mark.integration
def test_markdown_splits_past_the_limit_and_says_so(env, cli, tmp_path):
    from reconciler.plan.saved import load_plan

    out = tmp_path / "p.plan"
    cli("plan", "--out", str(out))
    plan = load_plan(out).plan
    parts = render_plan_markdown(plan, limit=1200)
    assert len(parts) > 1 and all(len(p) <= 1200 for p in parts)
    assert all(p.startswith(MARKER) for p in parts)
    assert f"_Part 2 of {len(parts)}: the plan is longer than one comment._" in parts[1]
    joined = "".join(parts)
    for c in plan.actionable():
        assert c.address in joined
    tiny = render_plan_markdown(plan, limit=750)  # a details block no longer fits: it is cut, and says so
    assert any("truncated" in p for p in tiny) and all(len(p) <= 750 for p in tiny)
