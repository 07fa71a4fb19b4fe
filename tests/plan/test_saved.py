"""Saved plans, reports and audits safe to hand to CI (issue 20): encrypted to the apply side with age,
bound to the commit and environment they were made for, refused with zero writes otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from reconciler.sealing import AGE_MAGIC, generate_identity

from ..helpers.processes import reconciler, sandbox_env
from ..helpers.sandbox import writes

pytestmark = pytest.mark.integration


@pytest.fixture
def keys(tmp_path):
    recipient, identity = generate_identity()
    other_recipient, other_identity = generate_identity()
    return {"recipient": recipient, "identity": identity, "other": other_identity, "other_recipient": other_recipient}


def sealed_env(sb, tmp_path, keys, **extra) -> dict[str, str]:
    return sandbox_env(sb, workspace=tmp_path / "ws", ci=None, RECONCILER_PLAN_RECIPIENTS=keys["recipient"], **extra)


def test_an_encrypted_plan_holds_no_client_data_and_applies_with_the_identity(sandbox, tmp_path, keys):
    plan = tmp_path / "plan.age"
    env = sealed_env(sandbox, tmp_path, keys)
    r = reconciler(env, "plan", "--out", str(plan))
    assert r.returncode == 0 and "encrypted to 1 recipient(s)" in r.stderr, r.stderr
    data = plan.read_bytes()
    assert data.startswith(AGE_MAGIC)
    live = sandbox.state.get(31547)
    for clear in (
        "31547",
        "31548",
        "MSFT",
        "NVDA",
        "10000002",
        "037833100",
        str(live["custodialAccountNumber"]),
        "registrationId",
        "deletedSleeveTargets",
    ):
        assert clear.encode() not in data, clear
    assert oct(plan.stat().st_mode & 0o777) == "0o600"
    shown = reconciler(env, "show", str(plan))  # no identity: one clear error, nothing else
    assert shown.returncode == 1 and "set RECONCILER_PLAN_IDENTITY" in shown.stderr
    with_key = {**env, "RECONCILER_PLAN_IDENTITY": keys["identity"]}
    shown = reconciler(with_key, "show", str(plan))
    assert shown.returncode == 0 and "TradeInstruction/10000002" in shown.stdout
    assert writes(sandbox) == 0
    report = tmp_path / "report.json"
    r = reconciler(with_key, "apply", str(plan), "--report", str(report))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert report.read_bytes().startswith(AGE_MAGIC)  # the report is encrypted too
    doc = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, pyrage; from pyrage import x25519; "
                "sys.stdout.buffer.write(pyrage.decrypt(open(sys.argv[1], 'rb').read(), "
                "[x25519.Identity.from_str(sys.argv[2])]))",
                str(report),
                keys["identity"],
            ],
            capture_output=True,
            check=True,
        ).stdout
    )
    assert doc["converged"] is True


@pytest.mark.parametrize(
    "damage",
    ["flipped byte", "truncated", "other recipients", "another commit", "another environment", "plaintext in CI"],
)
def test_damaged_replayed_or_plaintext_plans_are_refused_with_zero_writes(sandbox, tmp_path, keys, damage):
    plan = tmp_path / "plan.age"
    env = sealed_env(
        sandbox,
        tmp_path,
        keys,
        RECONCILER_COMMIT="a" * 40,
        RECONCILER_ENVIRONMENT="test",
        ORION_BASE_URL=sandbox.orion_url,
        SEI_BASE_URL=sandbox.sei_url,
    )
    args = ["plan", "--out", str(plan)]
    if damage == "other recipients":
        env["RECONCILER_PLAN_RECIPIENTS"] = keys["other_recipient"]
    if damage == "plaintext in CI":
        args.append("--no-encrypt")
    assert reconciler(env, *args).returncode == 0
    data = plan.read_bytes()
    if damage == "flipped byte":
        plan.write_bytes(data[:-40] + bytes([data[-40] ^ 0x01]) + data[-39:])
    elif damage == "truncated":
        plan.write_bytes(data[: len(data) // 2])
    apply_env = {**env, "RECONCILER_PLAN_IDENTITY": keys["identity"], "CI": "true"}
    if damage == "another commit":
        apply_env["RECONCILER_COMMIT"] = "b" * 40
    if damage == "another environment":
        apply_env["RECONCILER_ENVIRONMENT"] = "production"
    r = reconciler(apply_env, "apply", str(plan), "--auto-approve")
    assert r.returncode == 1, r.stdout[-2000:]
    expected = {
        "flipped byte": "is damaged or truncated",
        "truncated": "is damaged or truncated",
        "other recipients": "is encrypted to other recipients: RECONCILER_PLAN_IDENTITY is not one of them",
        "another commit": f"made for commit {'a' * 40}, not {'b' * 40} (RECONCILER_COMMIT)",
        "another environment": "made for the environment 'test', not 'production'",
        "plaintext in CI": "the saved plan is not encrypted",
    }[damage]
    assert expected in r.stderr, r.stderr
    assert writes(sandbox) == 0
    assert keys["identity"] not in r.stdout + r.stderr
    if damage == "plaintext in CI":
        assert reconciler(apply_env, "apply", str(plan), "--allow-plaintext-plan").returncode == 0


def test_the_identity_appears_in_no_output_log_report_or_journal(sandbox, tmp_path, keys):
    env = {**sealed_env(sandbox, tmp_path, keys), "RECONCILER_PLAN_IDENTITY": keys["identity"]}
    plan, report = tmp_path / "plan.age", tmp_path / "r.json"
    texts = []
    for args in (
        ["plan", "--out", str(plan), "--debug"],
        ["show", str(plan), "--debug"],
        ["apply", str(plan), "--debug", "--report", str(report), "--no-encrypt"],
        ["drift", "--debug", "--format", "json"],
        ["journal", "--json"],
    ):
        p = reconciler(env, *args)
        texts += [p.stdout, p.stderr]
    bad = {**env, "RECONCILER_PLAN_IDENTITY": "AGE-SECRET-KEY-1NOTAKEY" + keys["identity"][-20:]}
    p = reconciler(bad, "show", str(plan))
    assert p.returncode == 1 and "RECONCILER_PLAN_IDENTITY is not an age identity" in p.stderr
    texts += [p.stdout, p.stderr, report.read_text()]
    texts += [f.read_bytes().decode("latin-1") for f in (tmp_path / "ws").rglob("*") if f.is_file()]
    blob = "\n".join(texts)
    assert "reconciler.http" in blob or "POST /v1/Trading" in blob  # debug logs were on
    assert keys["identity"] not in blob and keys["identity"][-20:] not in blob


def test_drift_reports_for_upload_are_encrypted_and_no_encrypt_is_the_explicit_way_out(sandbox, tmp_path, keys):
    env = sealed_env(sandbox, tmp_path, keys)
    out = tmp_path / "drift.html"
    r = reconciler(env, "drift", "--format", "html", "--output", str(out))
    assert r.returncode == 2 and "encrypted" in r.stderr and out.read_bytes().startswith(AGE_MAGIC)
    r = reconciler(env, "drift", "--format", "markdown", "--output", str(out), "--no-encrypt")
    assert out.read_text().startswith("<!-- reconciler-drift -->")


def test_a_file_reconciler_encrypts_decrypts_with_the_age_command(sandbox, tmp_path, keys):
    age = shutil.which("age")
    if age is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's age package: .ci/run installs it")
        pytest.skip("the age command is not installed (apt-get install age); CI installs it and runs this test")
    key = tmp_path / "key.txt"
    made = reconciler(sealed_env(sandbox, tmp_path, keys), "keygen", "--output", str(key))
    assert made.returncode == 0 and made.stdout.startswith("age1") and "AGE-SECRET-KEY" not in made.stdout + made.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    recipient = made.stdout.strip()
    plan = tmp_path / "plan.age"
    assert (
        reconciler(
            sealed_env(sandbox, tmp_path, {**keys, "recipient": recipient}), "plan", "--out", str(plan)
        ).returncode
        == 0
    )
    clear = subprocess.run([age, "-d", "-i", str(key), str(plan)], capture_output=True, check=True).stdout
    doc = json.loads(clear)
    assert doc["kind"] == "reconciler-plan" and doc["saved"]["binding"]["environment"] == "custom"
    assert (
        reconciler(sealed_env(sandbox, tmp_path, keys), "keygen", "--output", str(key)).returncode == 1
    )  # no overwrite
