"""`reconciler plan` and `show` end to end against the sandbox: renderings, schema, exit codes, no writes."""

from __future__ import annotations

import json
import stat

import httpx
import pytest

from reconciler.manifests.schema import validate_instance

from ..helpers.processes import ROOT
from ..helpers.sandbox import sei_holds_a_conflicting_ticket

pytestmark = pytest.mark.integration


def test_plan_json_validates_against_its_schema(env, cli):
    r = cli("plan", "--format", "json")
    doc = json.loads(r.out)
    assert validate_instance("plan.schema.json", doc) == []
    assert {k: doc["summary"][k] for k in ("create", "update", "remove", "conflict", "unchanged")} == {
        "create": 3,
        "update": 3,
        "remove": 1,
        "conflict": 0,
        "unchanged": 3,
    }
    change = next(c for c in doc["changes"] if c["address"] == "SleeveRegistration/chen-ira")
    assert change == {
        "address": "SleeveRegistration/chen-ira",
        "action": "update",
        "source": {"file": "manifests/registrations/east/chen-ira.yaml", "line": 3},
        "fields": [{"path": "isDoNotTrade", "before": False, "after": True}],
    }
    sei = [s for s in doc["submissions"] if s["api"] == "sei"]
    assert [s["body"]["data"]["tradeTicketId"] for s in sei] == [10000002, 10000003, 10000102]
    assert all(s["body"]["data"]["batchSize"] in (3, 2) for s in sei)


def test_detailed_exitcode(env, cli):
    assert cli("plan", "--detailed-exitcode").code == 2
    assert cli("plan", "--detailed-exitcode", "--target", "SleeveRegistration/rivera-household").code == 0
    assert cli("plan", "--detailed-exitcode", "--selector", "office=east").code == 2


def test_conflict_gives_exit_2_and_says_it_blocks(env, cli):
    sei_holds_a_conflicting_ticket(env)
    r = cli("plan", "--detailed-exitcode", "--target", "TradeInstruction/*")
    assert r.code == 2
    assert "! TradeInstruction/10000002 conflict" in r.out and "! target: 75 → 80" in r.out
    assert "--exclude TradeInstruction/10000002" in r.out and "Apply is blocked by 1 conflict." in r.out


def test_saved_plan_is_private_has_no_secrets_and_shows(env, cli, tmp_path):
    out = tmp_path / "plans" / "pr-42.plan"
    r = cli("plan", "--out", str(out))
    assert r.code == 0 and "Saved the plan to" in r.err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    for secret in (env.creds.orion_token, env.creds.sei_token, env.creds.sei_app_key):
        assert secret not in text and secret not in r.out + r.err
    doc = json.loads(text)
    assert validate_instance("plan.schema.json", doc) == []
    assert doc["saved"]["manifests_digest"] and doc["saved"]["expires_at"] > doc["saved"]["created_at"]
    assert all(c["fingerprint"] for c in doc["changes"])
    shown = cli("show", str(out))
    assert shown.code == 0 and shown.out == cli("plan").out
    assert "valid until" in shown.err


def test_show_refuses_a_file_that_is_not_a_plan(cli, tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    r = cli("show", str(bad))
    assert r.code == 1 and "not a saved plan" in r.err and "Traceback" not in r.err


def test_invalid_manifests_never_reach_the_network(env, cli, tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: TradeBatch\nmetadata: {name: b}\nspec: {batchId: 1}\n"
    )
    before = httpx.get(f"{env.url}/_sandbox/counters").json()["total"]
    r = cli("plan", str(tmp_path))
    assert r.code == 1 and "bad.yaml:4:" in r.err
    assert httpx.get(f"{env.url}/_sandbox/counters").json()["total"] == before


def test_registration_missing_in_orion_names_its_manifest(env, cli, tmp_path):
    (tmp_path / "r.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: SleeveRegistration\nmetadata: {name: ghost}\nspec: {registrationId: 4242}\n"
    )
    r = cli("plan", str(tmp_path))
    assert r.code == 1 and "r.yaml:1:1: SleeveRegistration/ghost (registrationId 4242) does not exist in Orion" in r.err


def test_plan_uses_bulk_reads_only(env, cli):
    httpx.post(f"{env.url}/_sandbox/counters/reset")
    cli("plan")
    counts = httpx.get(f"{env.url}/_sandbox/counters").json()["requests"]
    assert counts["POST /api/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves"] == 1
    assert not any(k.startswith("GET /api/v1/Trading/Sleeve/Registrations/") for k in counts)


def test_plan_sandbox_flag_needs_no_environment(cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    for k in ("ORION_BASE_URL", "SEI_BASE_URL", "ORION_TOKEN", "SEI_TOKEN", "SEI_APP_KEY"):
        monkeypatch.delenv(k, raising=False)
    r = cli("plan", "--sandbox", "--detailed-exitcode")
    assert r.code == 2 and "Plan: 3 to create, 3 to update, 1 to remove, 0 conflicts" in r.out


def test_without_configuration_the_error_says_what_to_set(cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    for k in ("ORION_BASE_URL", "SEI_BASE_URL", "ORION_TOKEN", "SEI_TOKEN", "SEI_APP_KEY"):
        monkeypatch.delenv(k, raising=False)
    r = cli("plan")
    assert r.code == 1 and "ORION_BASE_URL is not set" in r.err and "--sandbox" in r.err
