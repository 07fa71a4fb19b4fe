"""The operator's first day (#33): each fix at the layer that makes it, tried as a newcomer would."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys

import pytest

from reconciler.audit.drift import DriftReport, Finding, FindingKind, FindingStatus
from reconciler.model import Source
from reconciler.plan.saved import manifests_commit

from ..helpers.processes import ROOT, quick_env, reconciler

pytestmark = pytest.mark.integration


def repository(tmp_path):
    """A manifests repository of its own, committed, as an operator's clone would be."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "manifests", repo / "manifests")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "manifests"]):
        subprocess.run(["git", *args], cwd=repo, env={**env, "PATH": "/usr/bin:/bin"}, check=True, capture_output=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    return repo, head


# --- reviewers see what a ticket will contain -------------------------------------------------------


def test_a_new_tickets_every_field_is_in_text_markdown_and_json(env, cli):
    text = cli("plan")
    assert text.code == 0, text.err
    # the headline, then every other field it will carry: comments, CUSIP, masterOrderId, strategyCode…
    line = text.out.split("+ TradeInstruction/10000002", 1)[1].splitlines()[1]
    for field in ("masterOrderId", "strategyCode", "cusip", "securityName", "affectsModel"):
        assert field in line, line
    md = cli("plan", "--format", "markdown")
    block = md.out.split("TradeInstruction/10000002</code> — create", 1)[1].split("</details>", 1)[0]
    assert "```diff" in block and "+ cusip:" in block and "+ masterOrderId:" in block and "fields sent" in md.out
    doc = json.loads(cli("plan", "--format", "json").out)
    create = next(c for c in doc["changes"] if c["address"] == "TradeInstruction/10000002")
    sent = {f["path"]: f["after"] for f in create["fields"]}
    body = next(s["body"]["data"] for s in doc["submissions"] if s["items"] == ["TradeInstruction/10000002"])
    assert sent == body and all(f["before"] is None for f in create["fields"])  # exactly what is sent


def test_markdown_diffs_use_lines_github_colours(env, cli):
    md = cli("plan", "--format", "markdown").out
    diffs = [b.split("```", 1)[0] for b in md.split("```diff\n")[1:]]
    assert diffs and all(ln[:1] in "+-" for d in diffs for ln in d.splitlines() if ln.strip())


# --- saved plans say where they go ------------------------------------------------------------------


def test_show_and_json_name_the_environment_and_both_hosts(env, cli, tmp_path):
    saved = tmp_path / "p.json"
    assert cli("plan", "--out", str(saved)).code == 0
    shown = cli("show", str(saved))
    host = env.orion_url.split("://", 1)[1].split("/", 1)[0]
    assert f"For: custom (Orion {host}, SEI {host})" in shown.err
    doc = json.loads(cli("plan", "--format", "json").out)
    assert doc["endpoints"] == {"orion": env.orion_url, "sei": env.sei_url, "environment": "custom"}


# --- evidence names the commit of the manifests' own repository ---------------------------------------


def test_the_commit_comes_from_the_manifests_repository_and_says_dirty(tmp_path, monkeypatch):
    repo, head = repository(tmp_path)
    monkeypatch.chdir(tmp_path)  # outside the repository
    assert manifests_commit([str(repo / "manifests")]) == head
    (repo / "manifests" / "registrations" / "sd-regname1.yaml").write_text("# edited\n", encoding="utf-8")
    (repo / "manifests" / "new.yaml").write_text("# new\n", encoding="utf-8")
    assert manifests_commit([str(repo / "manifests")]) == f"{head}+dirty (2 files)"
    assert manifests_commit([str(tmp_path / "nowhere")]) is None


def test_a_drift_audit_run_from_elsewhere_names_the_manifests_commit(sandbox, tmp_path):
    repo, head = repository(tmp_path)
    env = {k: v for k, v in quick_env(sandbox).items()}
    env = {**__import__("os").environ, **env, "RECONCILER_WORKSPACE": str(tmp_path / "ws")}
    env.pop("GITHUB_SHA", None), env.pop("RECONCILER_COMMIT", None)
    r = reconciler(env, "drift", str(repo / "manifests"), "--format", "json", cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert json.loads(r.stdout)["audit"]["commit"] == head


# --- one time zone ----------------------------------------------------------------------------------


def test_vendor_times_are_shown_in_utc_and_kept_as_written():
    from reconciler.render.drift_report import render_drift_text

    f = Finding(
        "SleeveRegistration/a",
        FindingKind.REGISTRATION,
        FindingStatus.DRIFTED,
        Source("a.yaml", 1),
        edited_by="jdoe",
        edited_date="2024-04-25T00:44:06.187-05:00",
    )
    assert f.edited_utc == "2024-04-25T05:44:06Z"

    report = DriftReport("2026-12-06T10:00:00+00:00", "t", "d", [f], [], [], 1)
    text = render_drift_text(report)
    assert "2024-04-25T05:44:06Z" in text and "-05:00" not in text


# --- commands find their tree -----------------------------------------------------------------------


def test_plan_from_a_subfolder_finds_the_manifests_above(env, cli, monkeypatch):
    monkeypatch.chdir(ROOT / "manifests" / "registrations")
    r = cli("plan")
    assert r.code == 0, r.err
    assert "Using ../../manifests (the manifests/ folder of" in r.err or "Using .." in r.err
    assert "reconciler will perform these actions" in r.out


# --- import checks what is already managed ----------------------------------------------------------


def test_validating_a_subfolder_names_the_whole_tree_for_templates_defined_elsewhere(cli):
    r = cli("validate", str(ROOT / "manifests" / "registrations" / "east"))
    assert r.code == 1 and "template 'equity-mf-20-30-50' does not exist" in r.err
    assert "needs the whole tree (e.g. manifests/)" in r.err
    assert cli("validate", str(ROOT / "manifests")).code == 0


def test_import_refuses_an_id_the_tree_already_manages(env, cli, tmp_path):
    tree = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", tree)
    r = cli("import", "registration", "31547", "--output", str(tree / "registrations") + "/")
    assert r.code == 1
    assert "registration 31547 is managed by" in r.err and "sd-regname1.yaml" in r.err and "--force" in r.err
    assert sorted(p.name for p in (tree / "registrations").iterdir()) == sorted(
        p.name for p in (ROOT / "manifests" / "registrations").iterdir()
    )  # nothing was written
    forced = cli("import", "registration", "31547", "--output", str(tmp_path / "elsewhere.yaml"), "--force")
    assert forced.code == 0, forced.err


# --- the sandbox on a busy port ---------------------------------------------------------------------


def test_the_sandbox_on_a_busy_port_exits_1_before_its_banner():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "reconciler", "sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in r.stderr and "--port" in r.stderr
    assert "reconciler sandbox: Orion at" not in r.stdout + r.stderr  # no banner for a server that is not there


# --- messages that say what to fix ------------------------------------------------------------------


def test_a_usage_error_points_to_the_subcommands_help(cli):
    r = cli("apply", "--parallelism", "0")
    assert r.code == 1 and "(see `reconciler apply --help`)" in r.err


def test_drift_target_narrows_the_audit_and_says_so(env, cli):
    r = cli("drift", "--format", "json", "--target", "TradeInstruction/*")
    assert r.code == 2, r.err
    addresses = {f["address"] for f in json.loads(r.out)["findings"]}
    assert addresses and all(a.startswith("TradeInstruction/") for a in addresses)
    assert "Targeting: 5 of 9 resources are checked" in r.err


def test_doctor_with_a_wrong_token_names_the_variable(sandbox, tmp_path):
    import os

    env = {**os.environ, **quick_env(sandbox), "ORION_TOKEN": "wrong-token-value"}
    r = reconciler(env, "doctor", cwd=ROOT)
    assert r.returncode == 1, r.stdout
    line = next(ln for ln in r.stdout.splitlines() if "Orion read" in ln)
    assert "ORION_TOKEN" in r.stdout and "rights" not in line
    assert "wrong-token-value" not in r.stdout + r.stderr


def test_a_postgres_message_is_one_line_without_literal_tabs():
    from reconciler.secret import Secret
    from reconciler.state.postgres import _redact

    raw = 'connection failed: FATAL:  password authentication failed for user "r"\n\tDETAIL: pw-sekrit\n'
    shown = _redact(Secret("postgresql://r:pw-sekrit@127.0.0.1/db"), raw)
    assert "\t" not in shown and "\n" not in shown and "pw-sekrit" not in shown and "DETAIL: ****" in shown


# --- real networks: Orion behind a private CA -------------------------------------------------------


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory):
    from ..helpers.external import issue_tls_files

    return issue_tls_files(tmp_path_factory.mktemp("orion-tls"))


def test_an_orion_sandbox_behind_a_private_ca_is_planned_with_orion_ca_bundle(private_ca, tmp_path):
    """Orion over TLS with a certificate of the firm's own CA: refused with a hint naming Orion's own
    variables, then planned once ORION_CA_BUNDLE names the CA (SEI on plain loopback http)."""
    import os

    from reconciler.sandbox.demo import demo_state
    from reconciler.sandbox.server import TlsFiles, start_sandbox
    from reconciler.sandbox.state import SandboxState, SandboxTiming

    tls = TlsFiles(private_ca["server_cert"], private_ca["server_key"])
    with (
        start_sandbox(SandboxState.from_json(demo_state(), timing=SandboxTiming(0.2)), tls=tls) as orion,
        start_sandbox(SandboxState.from_json(demo_state(), timing=SandboxTiming(0.2))) as sei,
    ):
        env = {
            **os.environ,
            **quick_env(sei),
            "ORION_BASE_URL": orion.orion_url.replace("127.0.0.1", "localhost"),
            "ORION_TOKEN": orion.creds.orion_token,
            "RECONCILER_WORKSPACE": str(tmp_path / "ws"),
        }
        for k in ("SSL_CERT_FILE", "SSL_CERT_DIR", "ORION_CA_BUNDLE"):
            env.pop(k, None)
        refused = reconciler(env, "plan")
        assert refused.returncode == 1
        assert "ORION_CA_BUNDLE" in refused.stderr and "SEI_CA_BUNDLE" not in refused.stderr
        planned = reconciler({**env, "ORION_CA_BUNDLE": private_ca["ca"]}, "plan")
        assert planned.returncode == 0, planned.stderr[-2000:]
        assert "reconciler will perform these actions" in planned.stdout


def test_orion_through_the_firms_proxy_with_its_credentials_masked(private_ca, tmp_path):
    """HTTPS_PROXY with user:password: Orion (TLS, the firm's CA) is reached through the proxy's CONNECT
    tunnel, SEI on NO_PROXY goes direct; a wrong proxy password fails naming the proxy, never the password."""
    import os

    from reconciler.sandbox.demo import demo_state
    from reconciler.sandbox.server import TlsFiles, start_sandbox
    from reconciler.sandbox.state import SandboxState, SandboxTiming

    from ..helpers.proxy import ConnectProxy

    tls = TlsFiles(private_ca["server_cert"], private_ca["server_key"])
    with (
        start_sandbox(SandboxState.from_json(demo_state(), timing=SandboxTiming(0.2)), tls=tls) as orion,
        start_sandbox(SandboxState.from_json(demo_state(), timing=SandboxTiming(0.2))) as sei,
        ConnectProxy("ops", "pr0xy-s3cret") as proxy,
    ):
        env = {
            **{k: v for k, v in os.environ.items() if k.lower() not in ("https_proxy", "no_proxy", "http_proxy")},
            **quick_env(sei),
            "ORION_BASE_URL": orion.orion_url.replace("127.0.0.1", "localhost"),
            "ORION_TOKEN": orion.creds.orion_token,
            "ORION_CA_BUNDLE": private_ca["ca"],
            "RECONCILER_WORKSPACE": str(tmp_path / "ws"),
            "HTTPS_PROXY": f"http://ops:pr0xy-s3cret@127.0.0.1:{proxy.port}",
            "NO_PROXY": "127.0.0.1",
        }
        planned = reconciler(env, "plan")
        assert planned.returncode == 0, planned.stderr[-2000:]
        port = orion.orion_url.split(":")[2].split("/")[0]
        assert proxy.tunnels and set(proxy.tunnels) == {f"localhost:{port}"}  # Orion only: SEI is on NO_PROXY
        wrong = reconciler({**env, "HTTPS_PROXY": f"http://ops:wr0ng-s3cret@127.0.0.1:{proxy.port}"}, "plan")
        assert wrong.returncode == 1 and proxy.refused >= 1
        assert "wr0ng-s3cret" not in wrong.stderr + wrong.stdout and "Traceback" not in wrong.stderr
        assert "the proxy refused the tunnel" in wrong.stderr and "HTTPS_PROXY" in wrong.stderr, wrong.stderr[-2000:]
