"""Hostile input, hostile output, hostile vendors (issue 12): each defect at the layer that fixes it.

Output: control and invisible characters never reach a terminal raw; markdown never carries live
HTML or a mention; vendor strings are bounded. Input: every bad value refused clearly, with its
line. Vendors: wrong shapes, endless paging, refused logins. Secrets and files: masked, 0600.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata
import urllib.parse

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from reconciler.errors import ApiAuthError, ApiError
from reconciler.escaping import html_text, md_code, md_fence, md_text
from reconciler.vendors import Redactor

from .conftest import ROOT, sandbox_env
from .test_providers import orion, sei

HOSTILE = ["\x1b[31mAAPL", "\x1b]0;owned\x07title", "x\x1b[2Jy", "\u202eevil\u200b", "</details><img src=x onerror=alert(1)>",
           "@org/team", "`code` ``` fence", "line\n✓ applied  SleeveRegistration/fake", "<script>alert(1)</script>"]


def _raw_controls(text: str) -> list[str]:
    """Characters that must never reach a terminal raw: controls but newline, and format (bidi, zero-width)."""
    return [c for c in text if (unicodedata.category(c) in ("Cc", "Cf") and c != "\n")]


def control(sb, method, path, **kw):
    return httpx.request(method, f"{sb.url}/_sandbox{path}", timeout=60, **kw).json()


# --- output that cannot be hijacked ----------------------------------------------------------------

@pytest.mark.integration
def test_plan_drift_and_apply_show_hostile_vendor_strings_escaped(env, cli):
    """A conflicting SEI row, an outside edit and a vendor message full of escapes and bidi."""
    row = {"batchId": "LCG-20261120-01\x1b]0;owned\x07", "tradeTicketId": 10000002, "masterOrderId": 5550001,
           "strategyCode": "LCG", "side": "SELL", "ticker": "\x1b[31mMSFT", "cusip": "594918104",
           "securityName": "Microsoft \u202eCorp" + "x" * 2_000_000, "target": 75, "orderGenerationPrice": 415.25,
           "affectsModel": True, "orderId": None, "status": "Original", "createDate": "2026-11-20T10:00:00"}
    control(env, "POST", "/tickets", json={"rows": [row]})
    import tempfile

    saved = tempfile.mktemp(suffix=".json")
    assert cli("plan", "--out", saved, "--exclude", "TradeInstruction/10000002").code == 0
    httpx.patch(f"{env.url}/_sandbox/registrations/31549",   # makes the saved plan stale, naming the editor
                json={"editedBy": "\x1b[2J\x1b[Hops\u202e\nApply: 6 applied", "set": {"isDoNotTrade": True}})
    outputs = []
    for args in (["plan"], ["drift"], ["drift", "--format", "markdown"], ["apply", saved]):
        r = cli(*args)
        outputs.append(r.out + r.err)
        assert len(r.out) + len(r.err) < 60_000, args   # a 2 MB vendor string is bounded
    os.unlink(saved)
    blob = "\n".join(outputs)
    assert _raw_controls(blob) == []
    assert "\\u001b[31mMSFT" in blob and "\\u202e" in blob and "\\u001b]0;owned\\u0007" in blob
    assert "edited by \\x1b[2J\\x1b[Hops\\u202e\\nApply: 6 applied" in outputs[3]   # apply's stale refusal
    assert "\nApply: 6 applied" not in blob   # no forged line
    assert "more characters)" in blob


@pytest.mark.integration
def test_file_names_with_escapes_are_shown_escaped(cli, write, tmp_path):
    write("evil\x1b[2J.yaml", "apiVersion: reconciler/v1\nkind: Nope\n")
    r = cli("validate", str(tmp_path))
    assert r.code == 1 and "evil\\x1b[2J.yaml:2:1: unknown kind" in r.err
    assert _raw_controls(r.err) == []


def test_apply_text_escapes_item_messages_at_the_console(sandbox):
    import io

    from reconciler.console import Output
    from reconciler.apply.outcomes import ApplyResult, ItemResult
    from reconciler.model import Source
    from reconciler.apply.outcomes import ItemStatus
    from reconciler.render.apply_report import render_apply_text

    result = ApplyResult((ItemResult("SleeveRegistration/a", "update", ItemStatus.FAILED,
                                     "Orion said \x1b[2J\nfake line\u202e", Source("f\x1b.yaml", 3)),),
                         (), False, False, "", "")
    out = io.StringIO()
    Output(out, io.StringIO(), color=True).result(render_apply_text(result))
    assert "\x1b[2J" not in out.getvalue() and "\\x1b[2J\\nfake line\\u202e" in out.getvalue()


def _html_tags(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    tags = []
    for t in tokens:
        children = t.children or []
        for c in [t, *children]:
            if c.type in ("html_inline", "html_block"):
                tags += re.findall(r"<(/?[a-zA-Z]+|!--)", c.content)
    return tags


def _mentions(markdown: str) -> list[str]:
    """@names GitHub would link: in text, not in code, not split by an HTML comment."""
    found = []
    for t in MarkdownIt("commonmark").enable("table").parse(markdown):
        for c in t.children or []:
            if c.type == "text":
                found += re.findall(r"(?<![\w`])@[A-Za-z0-9][\w-]*", c.content)
    return found


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_escapes_never_produce_live_html_or_mentions(value):
    doc = (f"| a | b |\n|---|---|\n| {md_code(value)} | {md_text(value)} |\n\n"
           f"<details><summary>{html_text(value)}</summary>\n\n{md_fence(value + chr(10) + value)}\n</details>\n")
    assert [t for t in _html_tags(doc) if t not in ("details", "/details", "summary", "/summary", "!--")] == []
    assert _html_tags(doc).count("details") == 1 == _html_tags(doc).count("/details")
    assert _mentions(doc) == []
    assert _raw_controls(doc.replace("\n", "")) == []


@pytest.mark.integration
def test_pr_comment_and_drift_issue_neutralise_hostile_batch_ids_editors_and_file_names(env, cli, tmp_path):
    tree = tmp_path / "m"
    shutil.copytree(ROOT / "manifests", tree)
    lcg = tree / "trades" / "lcg-rebalance-2026-11-20.yaml"
    lcg.write_text(lcg.read_text().replace('"LCG-20261120-01"', '"</details><img src=x onerror=alert(1)> @org/team ```"'))
    (tree / "registrations" / "east" / "chen-ira.yaml").rename(tree / "registrations" / "east" / "<img src=x>@ops`x.yaml")
    httpx.patch(f"{env.url}/_sandbox/registrations/31547", json={"editedBy": "<img src=x onerror=y> @org/admins",
                                                                 "set": {"isDoNotTrade": True}})
    r = cli("plan", str(tree), "--format", "markdown")
    assert r.code == 0, r
    d = cli("drift", str(tree), "--format", "markdown")
    for md in (r.out, d.out):
        assert [t for t in _html_tags(md) if t not in ("details", "/details", "summary", "/summary", "code",
                                                        "/code", "!--")] == []
        tags = _html_tags(md)
        assert tags.count("details") == tags.count("/details")
        assert _mentions(md) == []


# --- input that is refused clearly -----------------------------------------------------------------

REG = """\
apiVersion: reconciler/v1
kind: SleeveRegistration
metadata: {name: r1}
spec:
  registrationId: 31547
  accountSleeves:
    - {sleeveType: Normal sleeve, modelAggId: 36, targetAllocation: 50, toleranceUpper: 5}
    - {sleeveType: Normal sleeve, modelAggId: 34, targetAllocation: 50, minimumCash: 0}
"""
BATCH = """\
apiVersion: reconciler/v1
kind: TradeBatch
metadata: {name: b1}
spec:
  batchId: "B-1"
  instructions:
    - {tradeTicketId: 1, masterOrderId: 2, side: Buy, ticker: AAPL, cusip: "037833100", target: 5, orderGenerationPrice: 10}
"""


@pytest.mark.parametrize("file,old,new,line", [
    ("r.yaml", "targetAllocation: 50, toleranceUpper", "targetAllocation: .nan, toleranceUpper", 7),
    ("r.yaml", "toleranceUpper: 5", "toleranceUpper: .NaN", 7),
    ("r.yaml", "minimumCash: 0", "minimumCash: .nan", 8),
    ("b.yaml", "orderGenerationPrice: 10", "orderGenerationPrice: .nan", 7),
    ("b.yaml", "orderGenerationPrice: 10", "orderGenerationPrice: .inf", 7),
    ("b.yaml", "orderGenerationPrice: 10", "orderGenerationPrice: 1.0e+400", 7),
])
def test_non_finite_numbers_are_refused_with_their_line(cli, write, tmp_path, file, old, new, line):
    write(file, (REG if file == "r.yaml" else BATCH).replace(old, new))
    r = cli("validate", str(tmp_path))
    assert r.code == 1
    assert re.search(rf"{file}:{line}:\d+: '[^']+' is not a finite number", r.err), r.err


def test_every_independent_error_is_reported_and_lengths_are_named(cli, write, tmp_path):
    write("b.yaml", BATCH.replace("side: Buy", "side: BUY").replace('"037833100"', '"037833101"')
          .replace("target: 5", "target: 5, comments: '" + "c" * 300 + "'"))
    r = cli("validate", str(tmp_path))
    assert r.code == 1
    assert 'side: "BUY" is not allowed' in r.err
    assert "cusip '037833101' fails its check digit" in r.err
    assert "comments: 300 characters, over the limit of 255" in r.err and "c" * 100 not in r.err
    assert "Error: 3 errors in 1 file" in r.err


def test_zero_width_and_bidi_in_identifiers_are_refused_at_their_line(cli, write, tmp_path):
    write("b.yaml", BATCH.replace('"B-1"', '"B-\\u200b1"').replace("ticker: AAPL", 'ticker: "AA\\u202ePL"')
          .replace("metadata: {name: b1}", 'metadata: {name: b1, labels: {desk: "ops\\u200d"}}'))
    r = cli("validate", str(tmp_path))
    assert r.code == 1
    assert "b.yaml:5:12: batchId: 'B-\\u200b1' contains the invisible character U+200B" in r.err
    assert "ticker: 'AA\\u202ePL' contains the invisible character U+202E" in r.err
    assert "desk: 'ops\\u200d' contains the invisible character U+200D" in r.err
    assert _raw_controls(r.err) == []


def test_a_nul_byte_is_reported_at_its_line(cli, write, tmp_path):
    write("b.yaml", BATCH.encode().replace(b"ticker: AAPL", b'ticker: "A\0B"'))
    r = cli("validate", str(tmp_path))
    assert r.code == 1 and "b.yaml:7:" in r.err and "U+0000" in r.err


def test_a_fifo_is_refused_without_blocking_and_symlinks_are_followed_inside_the_tree(cli, write, tmp_path):
    write("m/.shared/r.yaml", REG)   # a hidden folder is not walked; a link to it inside the tree is followed
    (tmp_path / "m" / "linked").symlink_to(tmp_path / "m" / ".shared", target_is_directory=True)
    r = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(tmp_path / "m")], capture_output=True,
                       text=True, timeout=30, cwd=tmp_path)
    assert r.returncode == 0 and "1 registrations" in r.stderr, r.stderr
    (tmp_path / "m" / "loop").symlink_to(tmp_path / "m", target_is_directory=True)
    r = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(tmp_path / "m")], capture_output=True,
                       text=True, timeout=30, cwd=tmp_path)
    assert r.returncode == 1 and "m/loop:1:1: this folder was already read as m (a symbolic link loop" in r.stderr
    (tmp_path / "m" / "loop").unlink()
    os.mkfifo(tmp_path / "m" / "pipe.yaml")
    (tmp_path / "outside").mkdir()
    (tmp_path / "m" / "out").symlink_to(tmp_path / "outside", target_is_directory=True)
    r = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(tmp_path / "m")], capture_output=True,
                       text=True, timeout=30, cwd=tmp_path)   # never blocks on the FIFO
    assert r.returncode == 1
    assert "m/pipe.yaml:1:1: not a regular file (a FIFO, socket or device)" in r.stderr
    assert "m/out:1:1: a symbolic link to a folder outside the manifests tree" in r.stderr


@pytest.mark.integration
def test_an_empty_tree_is_an_error_unless_allowed(env, cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["validate"], ["plan"], ["drift"]):
        r = cli(*args, str(empty))
        assert r.code == 1 and "no SleeveRegistration or TradeBatch found" in r.err and "--allow-empty" in r.err, args
    assert cli("validate", str(empty), "--allow-empty").code == 0
    assert cli("plan", str(empty), "--allow-empty", "--detailed-exitcode").code == 0


@pytest.mark.integration
def test_targets_that_match_nothing_are_named_and_an_empty_selection_refused(env, cli):
    r = cli("plan", "--target", "SleeveRegistration/nope-*", "--detailed-exitcode")
    assert r.code == 1 and "--target SleeveRegistration/nope-* matches no resource" in r.err
    assert "leave no resource to check" in r.err and "No changes" not in r.out
    r = cli("plan", "--target", "SleeveRegistration/chen-ira", "--exclude", "TradeInstruction/9*")
    assert r.code == 0 and "--exclude TradeInstruction/9* matches no resource" in r.err
    assert "Targeting: 1 of 9 resources are checked" in r.err


def test_an_ignore_rule_for_a_field_that_does_not_exist_is_refused(cli, write, tmp_path):
    write("m/r.yaml", REG)
    write("m/reconciler.yaml", "ignore:\n  - {address: '*', field: 'accountSleeves[*].minimumCahs', reason: typo}\n")
    r = cli("validate", str(tmp_path / "m"))
    assert r.code == 0   # validate checks manifests; every command that loads settings refuses the rule:
    r = cli("plan", str(tmp_path / "m"))
    assert r.code == 1 and "no sleeve field is called 'minimumCahs'" in r.err
    write("m/reconciler.yaml", "ignore:\n  - {address: '*', field: 'isDoNotTrad', reason: typo}\n")
    assert "no registration or instruction field is called 'isDoNotTrad'" in cli("plan", str(tmp_path / "m")).err


@pytest.mark.integration
def test_import_never_writes_through_a_planted_symlink(env, cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    (out / "registration-31547.yaml").symlink_to(victim)   # dangling: exists() is False for it
    r = cli("import", "registration", "31547", "--output", str(out) + "/")
    assert r.code == 1 and "symbolic link" in r.err
    assert not victim.exists()
    r = cli("import", "registration", "31547", "--output", str(out) + "/", "--force")
    assert r.code == 1 and not victim.exists()


# --- vendors that answer badly ---------------------------------------------------------------------

@pytest.mark.parametrize("body", ['"a string"', "42", '[1, 2]', '[{"registrationId": "x"}]',
                                  '[{"registrationId": 1, "accountSleeves": "none"}]', '{"data": 1}'])
def test_wrong_shaped_orion_answers_are_api_errors_naming_the_call(body):
    client = orion(lambda req: httpx.Response(200, content=body.encode(), headers={"content-type": "application/json"}))
    with pytest.raises(ApiError) as info:
        client.list_with_sleeves([1])
    assert "POST /v1/Trading/Sleeve/Registrations/ListWithAccountSleeves" in str(info.value)


@pytest.mark.parametrize("body", ['"x"', '{"data": "rows"}', '{"data": [3]}', '{"data": [{"tradeTicketId": "a"}]}',
                                  '{"data": [], "paging": 5}'])
def test_wrong_shaped_sei_answers_are_api_errors_naming_the_call(body):
    client = sei(lambda req: httpx.Response(200, content=body.encode()))
    with pytest.raises(ApiError) as info:
        list(client.iter_tickets())
    assert "GET /v1/order/tradetickets" in str(info.value)


def test_paging_that_never_ends_is_bounded_by_total_count():
    calls = []

    def handler(req):
        calls.append(req)
        return httpx.Response(200, json={"data": [], "paging": {"totalCount": 0, "limit": 1000,
                                                                "next": f"cursor-{len(calls)}"}})
    client = sei(handler)
    with pytest.raises(ApiError, match="paging did not end"):
        list(client.iter_tickets())
    assert len(calls) <= 3


def test_a_refused_login_is_tried_once_and_names_the_variables_and_host():
    tries = []

    def handler(req):
        if req.url.path == "/v2/oauthtoken":
            tries.append(req)
            return httpx.Response(401, json={"code": "gateway.authentication.failure", "message": "bad"})
        return httpx.Response(200, json={"data": []})
    client = sei(handler, token=None, app_secret="s3cret-app", username="u", password="p4ssword")
    for _ in range(5):
        with pytest.raises(ApiAuthError) as info:
            list(client.iter_tickets())
    assert len(tries) == 1
    assert "SEI_APP_KEY" in str(info.value) and "SEI_USERNAME" in str(info.value) and "127.0.0.1" in str(info.value)


@pytest.mark.integration
def test_wrong_credentials_log_in_once_per_plan(sandbox, tmp_path):
    env = {**os.environ, **sandbox_env(sandbox), "SEI_TOKEN": "", "SEI_APP_SECRET": "demo-app-secret",
           "SEI_USERNAME": "demo-user", "SEI_PASSWORD": "wrong-password", "CI": "true",
           "RECONCILER_WORKSPACE": str(tmp_path / "ws")}
    control(sandbox, "POST", "/counters/reset")
    r = subprocess.run([sys.executable, "-m", "reconciler", "plan"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "SEI refused the login at 127.0.0.1" in r.stderr and "SEI_APP_KEY" in r.stderr
    assert control(sandbox, "GET", "/counters")["requests"].get("POST /v2/oauthtoken") == 1
    assert "wrong-password" not in r.stderr


def test_an_unreachable_base_url_names_the_host_and_variable():
    client = orion(lambda req: (_ for _ in ()).throw(httpx.ConnectError("Connection refused")))
    with pytest.raises(ApiError) as info:
        client.list_registrations()
    assert "could not connect to 127.0.0.1 (ORION_BASE_URL)" in str(info.value)


# --- secrets and files -----------------------------------------------------------------------------

def test_url_userinfo_is_refused_and_masked(cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("ORION_BASE_URL", "https://svc:hunter2-pass@api.example.com/api")
    for k, v in {"SEI_BASE_URL": "https://sei.example.com", "ORION_TOKEN": "t", "SEI_TOKEN": "t", "SEI_APP_KEY": "k"}.items():
        monkeypatch.setenv(k, v)
    r = cli("plan")
    assert r.code == 1 and "https://****@api.example.com/api" in r.err and "hunter2" not in r.err


def test_redaction_covers_encoded_forms_and_token_shapes():
    secret = "s3cr3t+/value=="
    r = Redactor([secret])
    text = " ".join([secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
                     base64.b64encode(secret.encode()).decode(), "access_token=abc123xyz&token_type=bearer",
                     "<pre>authorization: Session zzzzzzzzzzzz</pre>", '{"access_token": "qqqqqqqqq"}'])
    masked = r(text)
    for leak in (secret, urllib.parse.quote(secret, safe=""), "abc123xyz", "zzzzzzzzzzzz", "qqqqqqqqq",
                 base64.b64encode(secret.encode()).decode()):
        assert leak not in masked


def test_a_token_endpoints_body_is_never_quoted():
    def handler(req):
        if req.url.path.endswith("/Security/Token"):
            return httpx.Response(500, text="access_token=leaked-form-token-9999&expires_in=36000")
        return httpx.Response(200, json=[])
    client = orion(handler, token=None, username="u", password="pw-12345")
    with pytest.raises(ApiError) as info:
        client.list_registrations()
    assert "leaked-form-token-9999" not in str(info.value) and "body:" not in str(info.value)


@pytest.mark.integration
def test_journal_reports_and_drift_files_are_0600(env, cli, tmp_path):
    report, html = tmp_path / "r.json", tmp_path / "d.html"
    assert cli("apply", "--auto-approve", "--report", str(report)).code == 0
    httpx.patch(f"{env.url}/_sandbox/registrations/31549", json={"editedBy": "x", "set": {"isDoNotTrade": False}})
    assert cli("drift", "--format", "html", "--output", str(html)).code == 2
    journal = next((tmp_path / "ws").glob("*/journal.db"))
    for f in (report, html, journal):
        assert oct(f.stat().st_mode & 0o777) == "0o600", f
    assert oct(journal.parent.stat().st_mode & 0o777) == "0o700"


@pytest.mark.integration
@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "html"])
def test_every_drift_format_renders_with_histories_present(env, cli, fmt):
    live = httpx.get(f"{env.url}/api/v1/Trading/Sleeve/Registrations/31549",
                     headers={"Authorization": f"Session {env.creds.orion_token}"}).json()
    sleeve = next(s for s in live["accountSleeves"] if s.get("modelAggId") == 34)
    httpx.patch(f"{env.url}/_sandbox/registrations/31549",
                json={"editedBy": "jdoe", "sleeves": {str(sleeve["accountId"]): {"targetAllocation": 35}}})
    r = cli("drift", "--format", fmt)
    assert r.code == 2, r
    assert "internal error" not in r.err
    doc = json.loads(cli("drift", "--format", "json").out)
    (chen,) = [f for f in doc["findings"] if f["address"] == "SleeveRegistration/chen-ira"]
    assert chen["attribution"]["history"] and chen["attribution"]["history"][0]["editedBy"] == "jdoe"
    assert r.out.count("jdoe") >= (1 if fmt == "markdown" else 2)   # the editor, and the matching history entry


# --- the escaping invariant, for random strings through every format -------------------------------

_NASTY = st.lists(st.sampled_from(list("ab<>&@`|*_[]()#\n\t\x1b\x07\x00\u202e\u200b\u2066 /\\\"'")
                                  + ["</details>", "<img src=x>", "@org", "```", "<!--", "-->"]),
                  max_size=12).map("".join)


def _renderings(value: str):
    from reconciler.audit.drift import DriftReport, Finding
    from reconciler.model import Action, Change, FieldChange, Plan, Source
    from reconciler.render import render_plan_markdown, render_plan_text
    from reconciler.render.drift_report import render_drift_markdown, render_drift_text
    from reconciler.render.html import render_drift_html

    src = Source(f"m/{value}.yaml", 3)
    change = Change("SleeveRegistration/x", Action.UPDATE, src, (FieldChange(f"accountSleeves[{value}].t", value, 1),))
    ticket = Change("TradeInstruction/1", Action.CREATE, src, payload={"data": {"side": "Buy", "target": 1, "ticker": value,
                                                                              "batchId": value, "batchSize": 1}})
    plan = Plan((change, ticket), (), 0)
    finding = Finding("SleeveRegistration/x", "registration", "drifted", src, (FieldChange(value, value, 2),), value,
                      value, [{"editedBy": value, "editedDate": value, "changeType": "Update",
                               "changes": [{"field": value, "before": value, "after": 1}]}])
    report = DriftReport("2026-12-01T00:00:00+00:00", "0", "d", [finding], [], [], 1)
    return ((render_plan_text(plan), render_drift_text(report)),
            (*render_plan_markdown(plan), render_drift_markdown(report)), render_drift_html(report))


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=_NASTY)
def test_random_strings_keep_the_escaping_invariant_in_every_format(value):
    texts, mds, html = _renderings(value)
    plain_texts, plain_mds, _ = _renderings("a")
    for text, plain in zip(texts, plain_texts):
        assert _raw_controls(text) == []
        assert len(text.splitlines()) == len(plain.splitlines())   # no value can add a line of its own
    for md, plain in zip(mds, plain_mds):
        assert _raw_controls(md.replace("\n", "")) == []
        assert [t for t in _html_tags(md) if t not in ("details", "/details", "summary", "/summary", "code", "/code",
                                                       "!--")] == [], (value, md)
        assert _html_tags(md).count("details") == _html_tags(plain).count("details")
        assert _mentions(md) == []
    assert _raw_controls(html.replace("\n", "")) == []
    assert "<img" not in html and html.count("<details") == _renderings("a")[2].count("<details")


@pytest.mark.integration
def test_the_html_report_with_histories_and_hostile_editors_renders_in_chromium(env, cli, tmp_path):
    from .conftest import chromium_or_skip

    browser = chromium_or_skip()
    httpx.patch(f"{env.url}/_sandbox/registrations/31549",
                json={"editedBy": "<img src=x onerror=alert(1)>\u202ejdoe", "set": {"isDoNotTrade": False}})
    out = tmp_path / "drift.html"
    assert cli("drift", "--format", "html", "--output", str(out)).code == 2
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=90).stdout
    assert "<img" not in dom                                          # the editor's markup is text, not an element
    assert "&lt;img src=x onerror=alert(1)&gt;\\u202ejdoe" in dom      # shown, escaped, bidi visible
    shot = tmp_path / "drift.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,1600", out.as_uri()],
                   capture_output=True, timeout=90)
    assert shot.exists() and shot.stat().st_size > 10_000
    if os.environ.get("RECONCILER_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["RECONCILER_KEEP_SCREENSHOT"])
