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
import urllib.parse

import httpx
import pytest

from reconciler.errors import ApiAuthError, ApiError
from reconciler.vendors import Redactor

from ..helpers.docs import SIMPLE_REGISTRATION
from ..helpers.escaping import html_tags, mentions, raw_controls
from ..helpers.processes import ROOT, quick_env
from ..helpers.sandbox import control
from ..helpers.vendors import orion, sei

# --- output that cannot be hijacked ----------------------------------------------------------------


@pytest.mark.integration
def test_plan_drift_and_apply_show_hostile_vendor_strings_escaped(env, cli):
    """A conflicting SEI row, an outside edit and a vendor message full of escapes and bidi."""
    row = {
        "batchId": "LCG-20261120-01\x1b]0;owned\x07",
        "tradeTicketId": 10000002,
        "masterOrderId": 5550001,
        "strategyCode": "LCG",
        "side": "SELL",
        "ticker": "\x1b[31mMSFT",
        "cusip": "594918104",
        "securityName": "Microsoft \u202eCorp" + "x" * 2_000_000,
        "target": 75,
        "orderGenerationPrice": 415.25,
        "affectsModel": True,
        "orderId": None,
        "status": "Original",
        "createDate": "2026-11-20T10:00:00",
    }
    control(env, "POST", "/tickets", json={"rows": [row]})
    import tempfile

    saved = tempfile.mktemp(suffix=".json")
    assert cli("plan", "--out", saved, "--exclude", "TradeInstruction/10000002").code == 0
    httpx.patch(
        f"{env.url}/_sandbox/registrations/31549",  # makes the saved plan stale, naming the editor
        json={"editedBy": "\x1b[2J\x1b[Hops\u202e\nApply: 6 applied", "set": {"isDoNotTrade": True}},
    )
    outputs = []
    for args in (["plan"], ["drift"], ["drift", "--format", "markdown"], ["apply", saved]):
        r = cli(*args)
        outputs.append(r.out + r.err)
        assert len(r.out) + len(r.err) < 60_000, args  # a 2 MB vendor string is bounded
    os.unlink(saved)
    blob = "\n".join(outputs)
    assert raw_controls(blob) == []
    assert "\\u001b[31mMSFT" in blob and "\\u202e" in blob and "\\u001b]0;owned\\u0007" in blob
    assert "edited by \\x1b[2J\\x1b[Hops\\u202e\\nApply: 6 applied" in outputs[3]  # apply's stale refusal
    assert "\nApply: 6 applied" not in blob  # no forged line
    assert "more characters)" in blob


@pytest.mark.integration
def test_file_names_with_escapes_are_shown_escaped(cli, write, tmp_path):
    write("evil\x1b[2J.yaml", "apiVersion: reconciler/v1\nkind: Nope\n")
    r = cli("validate", str(tmp_path))
    assert r.code == 1 and "evil\\x1b[2J.yaml:2:1: unknown kind" in r.err
    assert raw_controls(r.err) == []


def test_apply_text_escapes_item_messages_at_the_console(sandbox):
    import io

    from reconciler.apply.outcomes import ApplyResult, ItemResult, ItemStatus
    from reconciler.console import Output
    from reconciler.model import Source
    from reconciler.render.apply_report import render_apply_text

    result = ApplyResult(
        (
            ItemResult(
                "SleeveRegistration/a",
                "update",
                ItemStatus.FAILED,
                "Orion said \x1b[2J\nfake line\u202e",
                Source("f\x1b.yaml", 3),
            ),
        ),
        (),
        False,
        False,
        "",
        "",
    )
    out = io.StringIO()
    Output(out, io.StringIO(), color=True).result(render_apply_text(result))
    assert "\x1b[2J" not in out.getvalue() and "\\x1b[2J\\nfake line\\u202e" in out.getvalue()


@pytest.mark.integration
def test_pr_comment_and_drift_issue_neutralise_hostile_batch_ids_editors_and_file_names(env, cli, tmp_path):
    tree = tmp_path / "m"
    shutil.copytree(ROOT / "manifests", tree)
    lcg = tree / "trades" / "lcg-rebalance-2026-11-20.yaml"
    lcg.write_text(
        lcg.read_text().replace('"LCG-20261120-01"', '"</details><img src=x onerror=alert(1)> @org/team ```"')
    )
    (tree / "registrations" / "east" / "chen-ira.yaml").rename(
        tree / "registrations" / "east" / "<img src=x>@ops`x.yaml"
    )
    httpx.patch(
        f"{env.url}/_sandbox/registrations/31547",
        json={"editedBy": "<img src=x onerror=y> @org/admins", "set": {"isDoNotTrade": True}},
    )
    r = cli("plan", str(tree), "--format", "markdown")
    assert r.code == 0, r
    d = cli("drift", str(tree), "--format", "markdown")
    for md in (r.out, d.out):
        assert [
            t for t in html_tags(md) if t not in ("details", "/details", "summary", "/summary", "code", "/code", "!--")
        ] == []
        tags = html_tags(md)
        assert tags.count("details") == tags.count("/details")
        assert mentions(md) == []


# --- input that is refused clearly -----------------------------------------------------------------

REG = SIMPLE_REGISTRATION
BATCH = """\
apiVersion: reconciler/v1
kind: TradeBatch
metadata: {name: b1}
spec:
  batchId: "B-1"
  instructions:
    - {tradeTicketId: 1, masterOrderId: 2, side: Buy, ticker: AAPL, cusip: "037833100", target: 5,
       orderGenerationPrice: 10}
"""


@pytest.mark.parametrize(
    "file,old,new,line",
    [
        ("r.yaml", "targetAllocation: 50, toleranceUpper", "targetAllocation: .nan, toleranceUpper", 7),
        ("r.yaml", "toleranceUpper: 5", "toleranceUpper: .NaN", 7),
        ("r.yaml", "minimumCash: 0", "minimumCash: .nan", 8),
        ("b.yaml", "orderGenerationPrice: 10", "orderGenerationPrice: .nan", 8),
        ("b.yaml", "orderGenerationPrice: 10", "orderGenerationPrice: .inf", 8),
        ("b.yaml", "orderGenerationPrice: 10", "orderGenerationPrice: 1.0e+400", 8),
    ],
)
def test_non_finite_numbers_are_refused_with_their_line(cli, write, tmp_path, file, old, new, line):
    write(file, (REG if file == "r.yaml" else BATCH).replace(old, new))
    r = cli("validate", str(tmp_path))
    assert r.code == 1
    assert re.search(rf"{file}:{line}:\d+: '[^']+' is not a finite number", r.err), r.err


def test_every_independent_error_is_reported_and_lengths_are_named(cli, write, tmp_path):
    write(
        "b.yaml",
        BATCH.replace("side: Buy", "side: BUY")
        .replace('"037833100"', '"037833101"')
        .replace("target: 5", "target: 5, comments: '" + "c" * 300 + "'"),
    )
    r = cli("validate", str(tmp_path))
    assert r.code == 1
    assert 'side: "BUY" is not allowed' in r.err
    assert "cusip '037833101' fails its check digit" in r.err
    assert "comments: 300 characters, over the limit of 255" in r.err and "c" * 100 not in r.err
    assert "Error: 3 errors in 1 file" in r.err


def test_zero_width_and_bidi_in_identifiers_are_refused_at_their_line(cli, write, tmp_path):
    write(
        "b.yaml",
        BATCH.replace('"B-1"', '"B-\\u200b1"')
        .replace("ticker: AAPL", 'ticker: "AA\\u202ePL"')
        .replace("metadata: {name: b1}", 'metadata: {name: b1, labels: {desk: "ops\\u200d"}}'),
    )
    r = cli("validate", str(tmp_path))
    assert r.code == 1
    assert "b.yaml:5:12: batchId: 'B-\\u200b1' contains the invisible character U+200B" in r.err
    assert "ticker: 'AA\\u202ePL' contains the invisible character U+202E" in r.err
    assert "desk: 'ops\\u200d' contains the invisible character U+200D" in r.err
    assert raw_controls(r.err) == []


def test_a_nul_byte_is_reported_at_its_line(cli, write, tmp_path):
    write("b.yaml", BATCH.encode().replace(b"ticker: AAPL", b'ticker: "A\0B"'))
    r = cli("validate", str(tmp_path))
    assert r.code == 1 and "b.yaml:7:" in r.err and "U+0000" in r.err


def test_a_fifo_is_refused_without_blocking_and_symlinks_are_followed_inside_the_tree(cli, write, tmp_path):
    write("m/.shared/r.yaml", REG)  # a hidden folder is not walked; a link to it inside the tree is followed
    (tmp_path / "m" / "linked").symlink_to(tmp_path / "m" / ".shared", target_is_directory=True)
    r = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert r.returncode == 0 and "1 registrations" in r.stderr, r.stderr
    (tmp_path / "m" / "loop").symlink_to(tmp_path / "m", target_is_directory=True)
    r = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert r.returncode == 1 and "m/loop:1:1: this folder was already read as m (a symbolic link loop" in r.stderr
    (tmp_path / "m" / "loop").unlink()
    os.mkfifo(tmp_path / "m" / "pipe.yaml")
    (tmp_path / "outside").mkdir()
    (tmp_path / "m" / "out").symlink_to(tmp_path / "outside", target_is_directory=True)
    r = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )  # never blocks on the FIFO
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


@pytest.mark.integration
def test_import_never_writes_through_a_planted_symlink(env, cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    (out / "registration-31547.yaml").symlink_to(victim)  # dangling: exists() is False for it
    r = cli("import", "registration", "31547", "--output", str(out) + "/")
    assert r.code == 1 and "symbolic link" in r.err
    assert not victim.exists()
    r = cli("import", "registration", "31547", "--output", str(out) + "/", "--force")
    assert r.code == 1 and not victim.exists()


# --- vendors that answer badly ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '"a string"',
        "42",
        "[1, 2]",
        '[{"registrationId": "x"}]',
        '[{"registrationId": 1, "accountSleeves": "none"}]',
        '{"data": 1}',
    ],
)
def test_wrong_shaped_orion_answers_are_api_errors_naming_the_call(body):
    client = orion(lambda req: httpx.Response(200, content=body.encode(), headers={"content-type": "application/json"}))
    with pytest.raises(ApiError) as info:
        client.list_with_sleeves([1])
    assert "POST /v1/Trading/Sleeve/Registrations/ListWithAccountSleeves" in str(info.value)


@pytest.mark.parametrize(
    "body",
    ['"x"', '{"data": "rows"}', '{"data": [3]}', '{"data": [{"tradeTicketId": "a"}]}', '{"data": [], "paging": 5}'],
)
def test_wrong_shaped_sei_answers_are_api_errors_naming_the_call(body):
    client = sei(lambda req: httpx.Response(200, content=body.encode()))
    with pytest.raises(ApiError) as info:
        list(client.iter_tickets())
    assert "GET /v1/order/tradetickets" in str(info.value)


def test_paging_that_never_ends_is_bounded_by_total_count():
    calls = []

    def handler(req):
        calls.append(req)
        return httpx.Response(
            200, json={"data": [], "paging": {"totalCount": 0, "limit": 1000, "next": f"cursor-{len(calls)}"}}
        )

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
    env = {
        **os.environ,
        **quick_env(sandbox),
        "SEI_TOKEN": "",
        "SEI_APP_SECRET": "demo-app-secret",
        "SEI_USERNAME": "demo-user",
        "SEI_PASSWORD": "wrong-password",
        "CI": "true",
        "RECONCILER_WORKSPACE": str(tmp_path / "ws"),
    }
    control(sandbox, "POST", "/counters/reset")
    r = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1 and "SEI refused the login at 127.0.0.1" in r.stderr and "SEI_APP_KEY" in r.stderr
    assert control(sandbox, "GET", "/counters")["requests"].get("POST /v2/oauthtoken") == 1
    assert "wrong-password" not in r.stderr


def test_an_unreachable_base_url_names_the_host_and_variable():
    client = orion(lambda req: (_ for _ in ()).throw(httpx.ConnectError("Connection refused")))
    with pytest.raises(ApiError) as info:
        client.list_registrations()
    assert "could not connect to 127.0.0.1 (ORION_BASE_URL)" in str(info.value)


# --- secrets and files -----------------------------------------------------------------------------


def test_redaction_covers_encoded_forms_and_token_shapes():
    secret = "s3cr3t+/value=="
    r = Redactor([secret])
    text = " ".join(
        [
            secret,
            urllib.parse.quote(secret, safe=""),
            urllib.parse.quote_plus(secret),
            base64.b64encode(secret.encode()).decode(),
            "access_token=abc123xyz&token_type=bearer",
            "<pre>authorization: Session zzzzzzzzzzzz</pre>",
            '{"access_token": "qqqqqqqqq"}',
        ]
    )
    masked = r(text)
    for leak in (
        secret,
        urllib.parse.quote(secret, safe=""),
        "abc123xyz",
        "zzzzzzzzzzzz",
        "qqqqqqqqq",
        base64.b64encode(secret.encode()).decode(),
    ):
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
    live = httpx.get(
        f"{env.url}/api/v1/Trading/Sleeve/Registrations/31549",
        headers={"Authorization": f"Session {env.creds.orion_token}"},
    ).json()
    sleeve = next(s for s in live["accountSleeves"] if s.get("modelAggId") == 34)
    httpx.patch(
        f"{env.url}/_sandbox/registrations/31549",
        json={"editedBy": "jdoe", "sleeves": {str(sleeve["accountId"]): {"targetAllocation": 35}}},
    )
    r = cli("drift", "--format", fmt)
    assert r.code == 2, r
    assert "internal error" not in r.err
    doc = json.loads(cli("drift", "--format", "json").out)
    (chen,) = [f for f in doc["findings"] if f["address"] == "SleeveRegistration/chen-ira"]
    assert chen["attribution"]["history"] and chen["attribution"]["history"][0]["editedBy"] == "jdoe"
    assert r.out.count("jdoe") >= (1 if fmt == "markdown" else 2)  # the editor, and the matching history entry


# --- the escaping invariant, for random strings through every format -------------------------------


@pytest.mark.integration
def test_the_html_report_with_histories_and_hostile_editors_renders_in_chromium(env, cli, tmp_path):
    from ..helpers.external import chromium_or_skip

    browser = chromium_or_skip()
    httpx.patch(
        f"{env.url}/_sandbox/registrations/31549",
        json={"editedBy": "<img src=x onerror=alert(1)>\u202ejdoe", "set": {"isDoNotTrade": False}},
    )
    out = tmp_path / "drift.html"
    assert cli("drift", "--format", "html", "--output", str(out)).code == 2
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=90
    ).stdout
    assert "<img" not in dom  # the editor's markup is text, not an element
    assert "&lt;img src=x onerror=alert(1)&gt;\\u202ejdoe" in dom  # shown, escaped, bidi visible
    shot = tmp_path / "drift.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1200,1600", out.as_uri()],
        capture_output=True,
        timeout=90,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
    if os.environ.get("RECONCILER_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["RECONCILER_KEEP_SCREENSHOT"])
