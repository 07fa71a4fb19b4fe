"""`reconciler drift` and `reconciler import` against the sandbox."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess

import httpx
import pytest

from reconciler.fields import utc_text
from reconciler.manifests.schema import validate_instance
from reconciler.render.html import BAR_PX_PER_PERCENT

from ..helpers.external import chromium_or_skip
from ..helpers.processes import ROOT
from ..helpers.sandbox import edit_outside_git as edit
from ..helpers.sandbox import sei_holds_a_conflicting_ticket

pytestmark = pytest.mark.integration


def test_outside_git_edit_shows_field_values_editor_and_time(env, cli):
    assert cli("apply", "--auto-approve").code == 0
    assert cli("drift").code == 0  # converged: no drift
    live = edit(env, 31549, "jdoe", set={"isDoNotTrade": False})
    sleeve = next(s for s in live["accountSleeves"] if s.get("modelAggId") == 34)
    live = edit(env, 31549, "asmith", sleeves={str(sleeve["accountId"]): {"targetAllocation": 35}})
    edit(env, 31548, "ops", set={"mandate": True})  # a field no manifest declares: never drift
    r = cli("drift")
    assert r.code == 2
    assert (
        "~ SleeveRegistration/chen-ira differs from its manifest — last edited by asmith at "
        f"{utc_text(live['editedDate'])}" in r.out  # shown in UTC, to the second
    )
    assert "rivera-household" not in r.out
    assert "    isDoNotTrade: live false, manifest true" in r.out
    assert "    accountSleeves[Normal sleeve, model 34].targetAllocation: live 35, manifest 30" in r.out
    assert re.search(r"history: \S+ jdoe: isDoNotTrade true → false", r.out)
    assert re.search(rf"history: \S+ asmith: accountSleeves\[{sleeve['accountId']}\]\.targetAllocation 30 → 35", r.out)
    doc = json.loads(cli("drift", "--format", "json").out)
    assert validate_instance("drift.schema.json", doc) == []
    (finding,) = doc["findings"]
    assert finding["attribution"]["editedBy"] == "asmith" and finding["source"]["line"] == 3
    assert {"path": "isDoNotTrade", "before": False, "after": True} in finding["fields"]
    assert dt.datetime.fromisoformat(doc["generated_at"]).tzinfo is not None


def test_missing_and_conflicting_instructions_are_drift(env, cli):
    sei_holds_a_conflicting_ticket(env)
    r = cli("drift", "--format", "json")
    assert r.code == 2
    by = {f["address"]: f for f in json.loads(r.out)["findings"]}
    assert by["TradeInstruction/10000002"]["status"] == "conflict"
    assert by["TradeInstruction/10000002"]["fields"] == [{"path": "target", "before": 75, "after": 80}]
    assert by["TradeInstruction/10000003"]["status"] == "missing"


def test_registration_missing_live_is_a_finding_not_an_error(env, cli, tmp_path):
    (tmp_path / "r.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: SleeveRegistration\nmetadata: {name: ghost}\nspec: {registrationId: 4242}\n"
    )
    r = cli("drift", str(tmp_path))
    assert r.code == 2 and "- SleeveRegistration/ghost is declared but missing live" in r.out


def _tree_with_rule(tmp_path, expires: dt.date):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "manifests", tree)
    (tree / "reconciler.yaml").write_text(
        "ignore:\n"
        f"  - {{address: 'SleeveRegistration/chen-ira', field: 'isDoNotTrade', reason: 'compliance hold set in Orion', "
        f"expires: {expires.isoformat()}}}\n"
    )
    return tree


def test_ignore_rule_hides_a_finding_until_it_expires(env, cli, tmp_path):
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    tree = _tree_with_rule(tmp_path, tomorrow)
    r = cli("drift", str(tree))
    assert "SleeveRegistration/chen-ira differs" not in r.out
    assert f"SleeveRegistration/chen-ira isDoNotTrade: compliance hold set in Orion (until {tomorrow})" in r.out
    assert "1 ignored." in r.out
    yesterday = dt.date.today() - dt.timedelta(days=1)
    tree2 = _tree_with_rule(tmp_path / "b", yesterday)
    r = cli("drift", str(tree2))
    assert "~ SleeveRegistration/chen-ira differs from its manifest" in r.out
    assert f"note: the ignore rule for isDoNotTrade ('compliance hold set in Orion') expired on {yesterday}" in r.out
    assert "it no longer hides drift" in r.out


def test_drift_markdown(env, cli):
    r = cli("drift", "--format", "markdown")
    assert r.code == 2 and r.out.startswith("<!-- reconciler-drift -->")
    assert "| `~` | `SleeveRegistration/chen-ira` | drifted |" in r.out


def test_html_report_renders_in_headless_chromium_with_bars_of_the_right_width(env, cli, tmp_path):
    browser = chromium_or_skip()
    out = tmp_path / "drift.html"
    assert cli("drift", "--format", "html", "--output", str(out)).code == 2
    expected = [
        (kind, a["label"], a[kind])
        for f in json.loads(cli("drift", "--format", "json").out)["findings"]
        for a in f.get("allocation", [])
        for kind in ("declared", "live")
    ]
    html = out.read_text()
    # self-contained: no script and no external asset (endpoint URLs appear as text in the audit block)
    assert "<script" not in html and not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    measure = (
        "<script>document.querySelectorAll('rect.bar').forEach(r => r.setAttribute('data-rendered-width',"
        " r.getBoundingClientRect().width.toFixed(1)));</script></body>"
    )
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", measure))
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    ).stdout
    bars = re.findall(
        r'<rect class="bar (declared|live)" data-label="([^"]+)" data-value="([\d.]+)"[^>]*'
        r'data-rendered-width="([\d.]+)"',
        dom,
    )
    assert len(bars) == 2 * (3 + 3 + 4)  # chen-ira 3 sleeves, okafor-trust 3, sd-regname1 4 (one removed)
    assert [(k, lbl, float(v)) for k, lbl, v, _ in bars] == expected  # the chart draws the report's numbers
    for kind, label, value, width in bars:  # and the browser laid each bar out at 3 px per percent
        assert abs(float(width) - float(value) * BAR_PX_PER_PERCENT) < 0.6, (kind, label, value, width)
    assert ("live", "Normal sleeve, model 36", "60.0") in [(k, lbl, v) for k, lbl, v, _ in bars]  # okafor's 60 live
    assert 'id="findings-count">6<' in dom


# --- import --------------------------------------------------------------------------------------


def test_import_round_trip_validates_and_plans_no_changes(env, cli, tmp_path):
    out = tmp_path / "imported"
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")  # a tree with the schemas, as the repository has
    httpx.post(f"{env.url}/_sandbox/counters/reset")
    r = cli("import", "registration", "31547", "31548", "31549", "31550", "31551", "31552", "--output", f"{out}/")
    assert r.code == 0, r
    counts = httpx.get(f"{env.url}/_sandbox/counters").json()["requests"]
    assert counts == {"POST /api/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves": 1}  # one bulk read
    for batch in ("LCG-20261120-01", "DIV-20261120-01", "SCV-20261002-01"):
        assert cli("import", "tradebatch", batch, "--output", f"{out}/").code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "div-20261120-01.yaml",
        "lcg-20261120-01.yaml",
        "registration-31547.yaml",
        "registration-31548.yaml",
        "registration-31549.yaml",
        "registration-31550.yaml",
        "registration-31551.yaml",
        "registration-31552.yaml",
        "scv-20261002-01.yaml",
    ]
    assert cli("validate", str(out)).code == 0
    r = cli("plan", str(out), "--detailed-exitcode")
    assert r.code == 0 and "No changes." in r.out
    text = (out / "registration-31547.yaml").read_text()
    first, second = text.splitlines()[:2]
    assert first == "# yaml-language-server: $schema=../schemas/sleeve-registration.schema.json"  # editors check it
    assert second.startswith("# Imported by reconciler") and "from Orion (127.0.0.1:" in text
    assert "contributionAllocationMethod: Assigned\n" in text  # enums plain, as people write them
    assert "$schema=../schemas/trade-batch.schema.json" in (out / "lcg-20261120-01.yaml").read_text()
    for server_owned in ("clientId", "currentValue", "editedBy", "sleeveDescription", "Custodial account"):
        assert server_owned not in text
    batch = (out / "lcg-20261120-01.yaml").read_text()
    assert 'cusip: "037833100"' in batch and 'batchId: "LCG-20261120-01"' in batch
    for secret in (env.creds.orion_token, env.creds.sei_token, env.creds.sei_app_key):
        assert secret not in text + batch


def test_import_refuses_to_overwrite_unless_forced(env, cli, tmp_path):
    target = tmp_path / "one.yaml"
    target.write_text("# mine\n")
    r = cli("import", "registration", "31551", "--output", str(target))
    assert r.code == 1 and "refusing to overwrite" in r.err and target.read_text() == "# mine\n"
    assert cli("import", "registration", "31551", "--output", str(target), "--force").code == 0
    assert "registrationId: 31551" in target.read_text()


def test_import_to_stdout_and_unknown_ids(env, cli):
    r = cli("import", "registration", "31551")
    assert r.code == 0 and "kind: SleeveRegistration" in r.out
    r = cli("import", "registration", "31551", "99")
    assert r.code == 1 and "not found in Orion: registration 99" in r.err
    r = cli("import", "tradebatch", "NOPE-1")
    assert r.code == 1 and "no tickets with batchId 'NOPE-1'" in r.err


def test_imported_ambiguous_sleeves_carry_their_account_id(env, cli, tmp_path):
    live = httpx.get(f"{env.url}/_sandbox/state").json()
    reg = next(r for r in live["registrations"] if r["registrationId"] == 31551)
    twin = dict(
        next(s for s in reg["accountSleeves"] if s.get("modelAggId") == 41), accountId=99999, targetAllocation=0
    )
    reg["accountSleeves"].append(twin)
    httpx.put(f"{env.url}/_sandbox/state", json=live)
    out = tmp_path / "amb"
    assert cli("import", "registration", "31551", "--output", f"{out}/").code == 0
    text = (out / "registration-31551.yaml").read_text()
    assert "accountId: 99999" in text
    assert cli("plan", str(out), "--detailed-exitcode").code == 0


def test_one_read_of_live_state_gives_several_reports_and_openmetrics_parses(env, cli, tmp_path):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    md, html = tmp_path / "drift.md", tmp_path / "drift.html"
    before = httpx.get(f"{env.url}/_sandbox/counters").json()["requests"]
    r = cli("drift", "--format", "markdown", "--output", str(md), "--also", f"html={html}")
    after = httpx.get(f"{env.url}/_sandbox/counters").json()["requests"]
    assert r.code == 2 and md.read_text().startswith("<!-- reconciler-drift -->") and "<html" in html.read_text()
    bulk = "POST /api/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves"
    assert after.get(bulk, 0) - before.get(bulk, 0) == 1  # both reports from one bulk read
    text = cli("drift", "--format", "openmetrics").out
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("reconciler_drift_resources", (("kind", "registration"),))] == 3
    assert samples[("reconciler_drift_findings", (("status", "missing"),))] == 3
    assert samples[("reconciler_managed_resources", (("kind", "instruction"),))] == 5
    assert samples[("reconciler_last_audit_timestamp_seconds", ())] > 1.7e9


def _tree_hiding_a_sleeve_target(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "manifests", tree)
    (tree / "reconciler.yaml").write_text(
        "ignore:\n  - {address: 'SleeveRegistration/okafor-trust', field: 'accountSleeves[Normal sleeve, model 41]."
        "targetAllocation', reason: 'rebalance in progress', expires: 2099-01-01}\n"
    )
    return tree


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "html"])
def test_every_drift_format_carries_the_audit_history_ignore_rules_and_missing_trades(env, cli, tmp_path, fmt):
    tree = _tree_hiding_a_sleeve_target(tmp_path)  # hides okafor-trust's model-41 target
    before = httpx.get(
        f"{env.url}/api/v1/Trading/Sleeve/Registrations/31547",
        headers={"Authorization": f"Session {env.creds.orion_token}"},
    ).json()
    model30 = next(s["accountId"] for s in before["accountSleeves"] if s.get("modelAggId") == 30)
    live = edit(env, 31547, "jdoe", sleeves={str(model30): {"targetAllocation": 45}})  # recorded in Histories
    r = cli("drift", str(tree), "--format", fmt)
    assert r.code == 2, r
    out = r.out
    if fmt == "json":
        doc = json.loads(out)
        assert doc["audit"]["environment"] == "custom" and doc["audit"]["operator"] and doc["audit"]["orion"]
        assert doc["generated_at"].endswith("+00:00")
        (missing,) = [f for f in doc["findings"] if f["address"] == "TradeInstruction/10000003"]
        assert missing["trade"] == {
            "side": "Buy",
            "ticker": "NVDA",
            "quantity": 300,
            "price": 142.1,
            "notional": 42630.0,
            "batchId": "LCG-20261120-01",
        }
        (okafor,) = [f for f in doc["findings"] if f["address"] == "SleeveRegistration/okafor-trust"]
        states = {a["label"]: a["state"] for a in okafor["allocation"]}
        assert states["Normal sleeve, model 41"] == "ignored" and states["Unmanaged sleeve"] == "absent"
        (bar,) = [a for a in okafor["allocation"] if a["state"] == "ignored"]
        assert bar["live"] == bar["declared"]  # a hidden difference is not drawn as drift
        (sd,) = [f for f in doc["findings"] if f["address"] == "SleeveRegistration/sd-regname1"]
        assert sd["attribution"]["history"][0]["editedBy"] == "jdoe"
        return
    assert {"text": "history: ", "markdown": "history: ", "html": "Change (from Orion's Histories)"}[fmt] in out
    assert "jdoe" in out and ("environment custom" in out or "<th>Environment</th><td>custom</td>" in out)
    assert "NVDA" in out and "42,630.00" in out
    assert "model 41" in out and "rebalance in progress" in out  # the hidden difference is listed apart
    assert live["editedDate"][:10] in out


def test_the_auditors_html_page_in_chromium(env, cli, tmp_path):
    browser = chromium_or_skip()
    tree = _tree_hiding_a_sleeve_target(tmp_path)
    edit(env, 31549, "jdoe", set={"isDoNotTrade": False})
    page = tmp_path / "drift.html"
    assert cli("drift", str(tree), "--format", "html", "--output", str(page)).code == 2
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
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90
    ).stdout
    assert 'id="audit"' in dom and "(UTC, ISO 8601)" in dom
    assert 'data-state="ignored"' in dom and 'data-state="absent"' in dom and 'data-state="removed"' in dom
    assert "<th>Not at SEI</th>" in dom and "$42,630.00" in dom and "jdoe" in dom
    shot = tmp_path / "drift.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
        capture_output=True,
        timeout=90,
    )
    assert shot.stat().st_size > 10_000
    if os.environ.get("RECONCILER_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["RECONCILER_KEEP_SCREENSHOT"])


def test_histories_without_field_changes_fall_back_to_the_latest_entry():
    """`changes` in Histories is [assumed]: without it, the newest entry attributes the finding."""
    from types import SimpleNamespace

    from reconciler.audit.drift import _history
    from reconciler.manifests import load_manifests
    from reconciler.plan.diff import diff_registration

    manifests = load_manifests([str(ROOT / "manifests")])
    reg = next(r for r in manifests.registrations if r.name == "chen-ira")
    entries = [
        {"changeType": "Update", "editedBy": "mhill", "editedDate": "2026-11-30T10:00:00Z"},
        {"changeType": "Create", "editedBy": "setup", "editedDate": "2024-01-01T00:00:00Z"},
    ]
    vendors = SimpleNamespace(orion=SimpleNamespace(histories=lambda rid: entries))
    live = {"registrationId": 31549, "isDoNotTrade": False, "accountSleeves": []}
    (h,) = _history(vendors, reg, diff_registration(reg, live))
    assert h["editedBy"] == "mhill" and "Orion's Histories name no fields" in h["note"]
