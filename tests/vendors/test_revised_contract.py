"""The revised vendor contract (issue 14): deleted sleeves as objects, Dollars sleeves, both method
spellings, SEI token rules, tracking ids, environments by name, and `reconciler doctor`."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import httpx
import pytest

from reconciler.fields import balance_type, normalise_method
from reconciler.sandbox.demo import demo_state
from reconciler.sandbox.server import TlsFiles, start_sandbox
from reconciler.sandbox.state import SandboxState, SandboxTiming
from reconciler.sandbox.writes import merge as _merge

from ..helpers.external import issue_tls_files
from ..helpers.processes import ROOT, quick_env

REG = """\
apiVersion: reconciler/v1
kind: SleeveRegistration
metadata: {{name: r1}}
spec:
  registrationId: 31547
{extra}  accountSleeves:
    - {{sleeveType: Normal sleeve, modelAggId: 36, targetAllocation: {a}, contributionAllocation: 60{t}}}
    - {{sleeveType: Normal sleeve, modelAggId: 34, targetAllocation: {b}, contributionAllocation: 30{t}}}
"""


def test_deleted_sleeve_targets_are_read_as_objects_and_as_bare_ids():
    live = {
        "registrationId": 1,
        "accountSleeves": [
            {"accountId": 10, "sleeveType": "Normal sleeve"},
            {"accountId": 11, "sleeveType": "Normal sleeve"},
            {"accountId": 12, "sleeveType": "Normal sleeve"},
        ],
    }
    merged, problems = _merge(
        live, {"deletedSleeveTargets": [{"accountId": 10, "deletedModelId": 36, "targetModelId": None}, 11]}, lambda: 0
    )
    assert problems == [] and [s["accountId"] for s in merged["accountSleeves"]] == [12]


@pytest.mark.parametrize(
    "value,expected",
    [
        (1, "Percent"),
        (2, "Dollars"),
        ("Dollars", "Dollars"),
        ("Amount", "Dollars"),
        (None, "Percent"),
        ("percent", "Percent"),
    ],
)
def test_target_balance_types(value, expected):
    assert balance_type({"targetBalanceType": value}) == expected


def test_dollars_sleeves_are_not_summed_to_100_and_mixing_is_refused(cli, write, tmp_path):
    write("d/r.yaml", REG.format(extra="", a=25000, b=10000, t=", targetBalanceType: Dollars"))
    r = cli("validate", str(tmp_path / "d"))
    assert r.code == 0, r.err  # Dollars: amounts, and the sum rule does not apply
    write(
        "o/r.yaml", REG.format(extra="", a=150, b=-50 + 0, t="").replace("targetAllocation: -50", "targetAllocation: 0")
    )
    r = cli("validate", str(tmp_path / "o"))
    assert r.code == 1 and "targetAllocation 150 is over 100 for a targetBalanceType Percent sleeve" in r.err
    write("p/r.yaml", REG.format(extra="", a=50, b=40, t=""))
    r = cli("validate", str(tmp_path / "p"))
    assert r.code == 1 and "(targetBalanceType Percent) to 90, not 100" in r.err  # which rule applied
    mixed = REG.format(extra="", a=50, b=50, t="").replace(
        "contributionAllocation: 30}", "contributionAllocation: 30, targetBalanceType: 2}"
    )
    write("m/r.yaml", mixed)
    r = cli("validate", str(tmp_path / "m"))
    assert r.code == 1 and "mix targetBalanceType Percent and Dollars" in r.err


@pytest.mark.parametrize(
    "spelling,canonical",
    [
        ("Assigned", "UseAssigned"),
        ("UseAssigned", "UseAssigned"),
        ("Sleeve Current Percent", "UseCurrent"),
        ("UseCurrent", "UseCurrent"),
        ("useoub", "UseOUB"),
        ("Something Else", "Something Else"),
    ],
)
def test_allocation_methods_normalise_both_spellings(spelling, canonical):
    assert normalise_method(spelling) == canonical


def test_both_spellings_apply_the_assigned_sum_rule_at_validate(cli, write, tmp_path):
    for n, spelling in enumerate(("Assigned", "UseAssigned")):
        write(f"{n}/r.yaml", REG.format(extra=f"  contributionAllocationMethod: {spelling}\n", a=50, b=50, t=""))
        r = cli("validate", str(tmp_path / str(n)))
        assert r.code == 1 and "contributionAllocation sums over Normal and Unmanaged sleeves to 90" in r.err, spelling


@pytest.mark.integration
def test_a_live_method_in_the_other_spelling_is_no_change_and_import_declares_the_sums(env, cli, tmp_path):
    assert cli("apply", "--auto-approve").code == 0
    live = httpx.patch(
        f"{env.url}/_sandbox/registrations/31547",  # sd-regname1 declares "Assigned"
        json={"editedBy": "api", "set": {"contributionAllocationMethod": "UseAssigned"}},
    ).json()
    assert live["contributionAllocationMethod"] == "UseAssigned"
    r = cli("plan", "--detailed-exitcode")
    assert r.code == 0, r.out  # "Assigned" == "UseAssigned"
    out = tmp_path / "imported.yaml"
    assert cli("import", "registration", "31547", "--output", str(out)).code == 0
    text = out.read_text()
    assert "contributionAllocation: " in text  # declared in full, so validate can check the sum


@pytest.mark.integration
def test_a_minted_sei_token_is_revoked_at_the_end_of_a_run(sandbox, tmp_path):
    env = {
        **os.environ,
        **quick_env(sandbox),
        "SEI_TOKEN": "",
        "SEI_APP_SECRET": "demo-app-secret",
        "SEI_USERNAME": "demo-user",
        "SEI_PASSWORD": "demo-password",
        "CI": "true",
        "RECONCILER_WORKSPACE": str(tmp_path / "ws"),
    }
    r = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(sandbox.creds.revoked_sei) == 1 and sandbox.creds.revoked_sei[0] not in sandbox.creds.minted_sei


@pytest.mark.integration
def test_the_sandbox_kills_idle_tokens_and_answers_invalid_api_key(sandbox):
    minted = httpx.post(
        f"{sandbox.url}/v2/oauthtoken",
        auth=(sandbox.creds.sei_app_key, "demo-app-secret"),
        data={"grant_type": "client_credentials", "username": "demo-user", "password": "demo-password"},
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {minted}", "AppKey": sandbox.creds.sei_app_key}
    assert httpx.get(f"{sandbox.url}/v1/order/tradetickets", headers=headers).status_code == 200
    sandbox.creds.sei_last_used[minted] -= 31 * 60  # 31 minutes without use
    assert (
        httpx.get(f"{sandbox.url}/v1/order/tradetickets", headers=headers).json()["message"] == "Access Token expired"
    )
    bad = httpx.get(f"{sandbox.url}/v1/order/tradetickets", headers={**headers, "AppKey": "nope"}).json()
    assert bad["message"] == "Invalid ApiKey for given resource"


@pytest.mark.integration
def test_batch_correlation_ids_are_in_the_apply_report(env, cli, tmp_path):
    report = tmp_path / "r.json"
    assert cli("apply", "--auto-approve", "--report", str(report)).code == 0
    regs = [i for i in json.loads(report.read_text())["items"] if i["address"].startswith("SleeveRegistration/")]
    assert regs and all("correlationId sandbox-" in i["reference"] for i in regs)


# --- environments by name ---------------------------------------------------------------------------


@pytest.mark.integration
def test_plans_reports_and_comments_name_the_environment(env, cli, tmp_path):
    from reconciler.plan.saved import load_plan
    from reconciler.render import render_plan_markdown

    plan = tmp_path / "p.json"
    r = cli("plan", "--out", str(plan))
    assert "Environment: custom (Orion 127.0.0.1:" in r.err
    saved = load_plan(plan)
    assert saved.endpoints["environment"] == "custom"
    head = render_plan_markdown(saved.plan, environment=saved.endpoints)[0]
    assert "Environment: **custom** · Orion `127.0.0.1:" in head and "token" not in head.lower()
    report = tmp_path / "r.json"
    assert cli("apply", str(plan), "--report", str(report)).code == 0
    assert json.loads(report.read_text())["environment"] == "custom"


# --- doctor -----------------------------------------------------------------------------------------


def doctor(env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "doctor"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.integration
def test_doctor_passes_on_the_sandbox(cli):
    r = cli("doctor", "--sandbox")
    assert r.code == 0, r.out + r.err
    assert "✓ Orion read" in r.out and "✓ SEI read" in r.out and "0 failure(s)" in r.err


@pytest.fixture(scope="module")
def expiring(tmp_path_factory):
    return issue_tls_files(
        tmp_path_factory.mktemp("doctor-tls"),
        client_not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=10, hours=1),
    )


@pytest.fixture
def mtls_pair(expiring):
    """Orion on plain loopback http, SEI behind two-way TLS with a certificate that expires in 10 days."""
    tls = TlsFiles(expiring["server_cert"], expiring["server_key"], client_ca=expiring["ca"])
    with (
        start_sandbox(SandboxState.from_json(demo_state(), timing=SandboxTiming(0.2))) as orion,
        start_sandbox(SandboxState.from_json(demo_state(), timing=SandboxTiming(0.2)), tls=tls) as sei,
    ):
        env = {
            **os.environ,
            **quick_env(orion),
            "SEI_BASE_URL": sei.sei_url.replace("127.0.0.1", "localhost"),
            "SEI_TOKEN": sei.creds.sei_token,
            "SEI_APP_KEY": sei.creds.sei_app_key,
            "SEI_CA_BUNDLE": expiring["ca"],
            "SEI_CLIENT_CERT": expiring["client_cert"],
            "SEI_CLIENT_KEY": expiring["client_key"],
            "CI": "true",
        }
        yield env


@pytest.mark.integration
def test_doctor_warns_of_an_expiring_client_certificate_with_the_days_left(mtls_pair):
    r = doctor(mtls_pair)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "! SEI client certificate: CN=svc-reconciler@example.com" in r.stdout or "expires in 10 day(s)" in r.stdout
    assert "expires in 10 day(s)" in r.stdout and "ask SEI to reissue it" in r.stdout
    assert "✓ SEI endpoint: localhost:" in r.stdout and "TLSv1" in r.stdout
    assert "✓ SEI read" in r.stdout


@pytest.mark.integration
@pytest.mark.parametrize(
    "change,variable",
    [
        ({"SEI_CLIENT_KEY": "other_key"}, "SEI_CLIENT_KEY does not match SEI_CLIENT_CERT"),
        ({"SEI_APP_KEY": "wrong-app-key"}, "SEI_APP_KEY"),
        ({"ORION_TOKEN": "", "ORION_USERNAME": ""}, "set ORION_TOKEN, or ORION_USERNAME and ORION_PASSWORD"),
        ({"ORION_BASE_URL": "http://127.0.0.1:9/api"}, "no TCP connection to 127.0.0.1:9"),
    ],
)
def test_doctor_fails_naming_what_to_fix(mtls_pair, expiring, change, variable):
    env = {**mtls_pair, **{k: expiring.get(v, v) for k, v in change.items()}}
    r = doctor(env)
    assert r.returncode == 1, r.stdout
    assert variable in r.stdout and "✗" in r.stdout
    for secret in ("wrong-app-key", mtls_pair["SEI_TOKEN"], mtls_pair["ORION_TOKEN"]):
        assert secret not in r.stdout + r.stderr
