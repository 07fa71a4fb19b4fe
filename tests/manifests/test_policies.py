"""Guardrails declared as `kind: Policy` (issue 17): limits and change windows, enforced before any write."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from ..helpers.processes import ROOT
from ..helpers.sandbox import writes
from ..helpers.state import journal_file

pytestmark = pytest.mark.integration

POLICY = """\
apiVersion: reconciler/v1
kind: Policy
metadata: {{name: desk-limits}}
spec:
  enforcement: {enforcement}
  limits:
    maxTicketNotional: {limit}
{windows}"""
SEI_WEEKDAYS = """\
  windows:
    - {api: sei, days: [Mon, Tue, Wed, Thu, Fri], from: "09:30", to: "15:30", timezone: America/New_York}
"""
SATURDAY_NOON = "2026-12-05T12:00:00-05:00"
MONDAY_TEN = "2026-12-07T10:00:00-05:00"


def tree(tmp_path, enforcement="hard", limit=35000, windows=""):
    root = tmp_path / "m"
    shutil.copytree(ROOT / "manifests", root)
    (root / "policies.yaml").write_text(POLICY.format(enforcement=enforcement, limit=limit, windows=windows))
    return str(root)


def test_a_hard_limit_is_shown_by_plan_and_refuses_apply_with_zero_writes(env, cli, tmp_path):
    m = tree(tmp_path, "hard")
    r = cli("plan", m)
    assert r.code == 1 and "fails 1 hard policy rule(s) (desk-limits maxTicketNotional)" in r.err
    assert "✗ desk-limits maxTicketNotional: FAILED (hard: apply refuses)" in r.out
    assert "TradeInstruction/10000003: $42,630.00, over $35,000.00 by $7,630.00" in r.out
    doc = json.loads(cli("plan", m, "--format", "json").out)
    (result,) = doc["policy"]["results"]
    assert result == {
        "policy": "desk-limits",
        "rule": "maxTicketNotional",
        "enforcement": "hard",
        "passed": False,
        "message": result["message"],
        "addresses": ["TradeInstruction/10000003"],
    }
    md = cli("plan", m, "--format", "markdown").out
    assert md.index("**Policies:** 0 passed, 1 failed") < md.index("| | Resource |")  # above the fold
    r = cli("apply", m, "--auto-approve")
    assert r.code == 1 and "policies refuse this plan, so nothing was written" in r.err
    assert writes(env) == 0


def test_a_soft_limit_refuses_until_overridden_with_a_reason_recorded(env, cli, tmp_path):
    m = tree(tmp_path, "soft")
    r = cli("apply", m, "--auto-approve")
    assert r.code == 1 and "--override-policy NAME --reason TEXT" in r.err and writes(env) == 0
    assert cli("apply", m, "--auto-approve", "--override-policy", "desk-limits").code == 1  # a reason is required
    report = tmp_path / "r.json"
    r = cli(
        "apply",
        m,
        "--auto-approve",
        "--override-policy",
        "desk-limits",
        "--reason",
        "approved by the CIO, T-42",
        "--report",
        str(report),
    )
    assert r.code == 0, r
    assert "soft policy desk-limits is overridden by" in r.err
    (override,) = json.loads(report.read_text())["policy"]["overrides"]
    assert override["policy"] == "desk-limits" and override["reason"] == "approved by the CIO, T-42" and override["who"]
    with sqlite3.connect(journal_file(tmp_path / "ws")) as db:
        assert db.execute("SELECT kind, key, reason FROM resolutions").fetchall() == [
            ("policy-override", "desk-limits", "approved by the CIO, T-42")
        ]


def test_an_advisory_limit_only_warns(env, cli, tmp_path):
    r = cli("apply", tree(tmp_path, "advisory"), "--auto-approve")
    assert r.code == 0, r
    assert "Warning: advisory policy desk-limits maxTicketNotional" in r.err


def _window(days: list[str]) -> str:
    """An SEI window on `days`, all day in UTC: built around the real clock, never a faked one."""
    return f"""\
  windows:
    - {{api: sei, days: [{", ".join(days)}], from: "00:00", to: "24:00", timezone: UTC}}
"""


def test_outside_a_window_apply_refuses_naming_the_next_opening_and_inside_it_applies(env, cli, tmp_path):
    """The window is the day after tomorrow (UTC): shut now by the real clock, whatever the date."""
    import datetime as dt

    today = dt.datetime.now(dt.UTC).date()
    later = today + dt.timedelta(days=2)
    m = tree(tmp_path, "hard", limit=1_000_000, windows=_window([later.strftime("%a")]))
    r = cli("apply", m, "--auto-approve")
    assert r.code == 1 and "SEI writes are outside every window" in r.err
    assert f"the next opens at {later.isoformat()}T00:00:00+00:00" in r.err and writes(env) == 0
    inside = f"{later.isoformat()}T10:00:00+00:00"
    p = cli("plan", m, "--now", inside)  # what-if planning: windows as of that moment, said so
    assert p.code == 0 and "✓ desk-limits window:sei: passed" in p.out
    assert f"Policies (change windows as of {inside}, --now: what-if only; apply uses the real clock):" in p.out
    assert json.loads(cli("plan", m, "--now", inside, "--format", "json").out)["policy"]["windows_as_of"] == inside
    every_day = tree(
        tmp_path / "open", "hard", limit=1_000_000, windows=_window(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
    )
    r = cli("apply", every_day, "--auto-approve")
    assert r.code == 0, r


def test_a_faked_clock_never_opens_a_window_for_apply(env, cli, tmp_path, monkeypatch):
    """RECONCILER_NOW (or --now) inside a window while the real clock is outside it: apply refuses with
    zero writes, naming the variable; plan still shows the windows as of that moment."""
    import datetime as dt

    later = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)
    m = tree(tmp_path, "hard", limit=1_000_000, windows=_window([later.strftime("%a")]))
    inside = f"{later.isoformat()}T10:00:00+00:00"
    monkeypatch.setenv("RECONCILER_NOW", inside)
    r = cli("apply", m, "--auto-approve")
    assert r.code == 1 and "RECONCILER_NOW sets the moment change windows are judged at" in r.err
    assert "apply judges windows by this machine's clock" in r.err.lower() and writes(env) == 0
    monkeypatch.delenv("RECONCILER_NOW")
    r = cli("apply", m, "--auto-approve", "--now", inside)
    assert r.code == 1 and "drop --now" in r.err and writes(env) == 0
    p = cli("plan", m, "--now", inside)
    assert p.code == 0 and "✓ desk-limits window:sei: passed" in p.out


def test_windows_are_judged_by_an_injected_clock_inside_a_unit(tmp_path):
    """The clock apply uses is a parameter for unit tests (never an environment variable): the same
    window refuses at Saturday noon and is open on Monday at ten."""
    import datetime as dt

    from reconciler.manifests import load_manifests
    from reconciler.manifests.policy import window_guard

    m = tree(tmp_path, "hard", limit=1_000_000, windows=SEI_WEEKDAYS)
    manifests = load_manifests([m])
    saturday = window_guard(manifests.policies, set(), lambda: dt.datetime.fromisoformat(SATURDAY_NOON))
    monday = window_guard(manifests.policies, set(), lambda: dt.datetime.fromisoformat(MONDAY_TEN))
    assert "the next opens at 2026-12-07T09:30:00-05:00" in saturday("sei")
    assert monday("sei") is None and saturday("orion") is None
    assert (
        window_guard(manifests.policies, {"desk-limits"}, lambda: dt.datetime.fromisoformat(SATURDAY_NOON))("sei")
        is None
    )


def test_bad_policies_are_refused_at_their_lines_all_at_once(cli, write, tmp_path):
    """An unknown rule, a bad level, a bad time zone and a window backwards: four errors, one run."""
    write(
        "p.yaml",
        """\
apiVersion: reconciler/v1
kind: Policy
metadata: {name: bad}
spec:
  enforcement: strict
  limits: {maxTicketNotionl: 5}
  windows:
    - {api: sei, days: [Mon], from: "15:00", to: "09:00", timezone: America/New_York}
    - {api: orion, days: [Sat], from: "00:00", to: "24:00", timezone: Mars/Olympus_Mons}
""",
    )
    r = cli("validate", str(tmp_path), "--allow-empty")
    assert r.code == 1
    assert 'p.yaml:5:3: enforcement: "strict" is not allowed (use one of: advisory, soft, hard)' in r.err
    assert "p.yaml:6:12: unknown field 'maxTicketNotionl'" in r.err
    assert "p.yaml:8:" in r.err and "from 15:00 is not before to 09:00" in r.err
    assert "p.yaml:9:" in r.err and "timezone 'Mars/Olympus_Mons' is not a known IANA time zone" in r.err
    assert "Error: 4 errors in 1 file" in r.err


def test_window_rules_are_checked_at_their_lines(cli, write, tmp_path):
    write(
        "p.yaml",
        """\
apiVersion: reconciler/v1
kind: Policy
metadata: {name: windows}
spec:
  windows:
    - {api: sei, days: [Mon], from: "15:00", to: "09:00", timezone: America/New_York}
    - {api: orion, days: [Sat], from: "00:00", to: "24:00", timezone: Mars/Olympus_Mons}
""",
    )
    r = cli("validate", str(tmp_path), "--allow-empty")
    assert r.code == 1
    assert "p.yaml:6:" in r.err and "from 15:00 is not before to 09:00" in r.err
    assert "p.yaml:7:" in r.err and "timezone 'Mars/Olympus_Mons' is not a known IANA time zone" in r.err


def test_server_validate_shows_orions_rejection_of_an_unknown_model_before_apply(env, cli, tmp_path):
    root = tmp_path / "m"
    shutil.copytree(ROOT / "manifests", root)
    chen = root / "registrations" / "east" / "chen-ira.yaml"
    chen.write_text(
        chen.read_text().replace(
            "template: equity-mf-20-30-50",
            "accountSleeves: [{sleeveType: Normal "
            "sleeve, modelAggId: 99, targetAllocation: 100, contributionAllocation: "
            "100, distributionAllocation: 100}]",
        )
    )
    r = cli("plan", str(root), "--server-validate")
    assert r.code == 0, r
    assert "✗ SleeveRegistration/chen-ira: Orion would reject it: model 99 does not exist" in r.err
    assert "1 of 3 changed registration(s) would be rejected by Orion" in r.err
    assert writes(env) == 0
