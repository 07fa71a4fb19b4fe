"""`drift --adopt` (issue 21): live values written back into the manifests, surgically."""

from __future__ import annotations

import shutil

import httpx
import pytest

from ..helpers.processes import ROOT
from ..helpers.sandbox import edit_outside_git as edit
from ..helpers.sandbox import writes

pytestmark = pytest.mark.integration


def sleeve_id(live: dict, model: int) -> str:
    return str(next(s["accountId"] for s in live["accountSleeves"] if s.get("modelAggId") == model))


@pytest.fixture
def converged(env, cli, tmp_path):
    tree = tmp_path / "m"
    shutil.copytree(ROOT / "manifests", tree)
    assert cli("apply", str(tree), "--auto-approve").code == 0
    return tree


def test_adopt_rewrites_exactly_the_drifted_lines_and_a_plan_after_is_empty(env, cli, converged):
    tree = converged
    chen = tree / "registrations" / "east" / "chen-ira.yaml"
    sd = tree / "registrations" / "west" / "sd-regname1.yaml"
    template = tree / "templates" / "equity-mf-20-30-50.yaml"
    before = {p: p.read_text() for p in (chen, sd, template)}
    live = edit(env, 31549, "jdoe", set={"isDoNotTrade": False, "autoRebalDay": 20})  # own field; template field
    live_sd = httpx.get(
        f"{env.url}/api/v1/Trading/Sleeve/Registrations/31547",
        headers={"Authorization": f"Session {env.creds.orion_token}"},
    ).json()
    edit(
        env,
        31547,
        "asmith",
        sleeves={sleeve_id(live_sd, 34): {"targetAllocation": 35}, sleeve_id(live_sd, 30): {"targetAllocation": 45}},
    )  # inside flow mappings
    assert live["editedBy"] == "jdoe"
    counted = writes(env)
    dry = cli("drift", str(tree), "--adopt", "--dry-run")
    assert dry.code == 2 and "-  isDoNotTrade: true\n+  isDoNotTrade: false" in dry.out
    assert {p: p.read_text() for p in before} == before  # --dry-run wrote nothing
    r = cli("drift", str(tree), "--adopt")
    assert r.code == 0, r
    assert writes(env) == counted  # nothing written to a vendor
    assert template.read_text() == before[template]  # a shared template is never edited
    assert "an override: the template equity-mf-20-30-50 is shared" in r.err
    old, new = before[chen].splitlines(), chen.read_text().splitlines()
    assert new[: len(old)] == [ln.replace("isDoNotTrade: true", "isDoNotTrade: false") for ln in old]
    assert new[len(old) :] == ["  autoRebalDay: 20"]  # the override, appended in style
    old, new = before[sd].splitlines(), sd.read_text().splitlines()
    changed = [(a, b) for a, b in zip(old, new) if a != b]
    assert len(old) == len(new) and changed == [
        (
            "    - {sleeveType: Normal sleeve, modelAggId: 34, targetAllocation: 30,",
            "    - {sleeveType: Normal sleeve, modelAggId: 34, targetAllocation: 35,",
        ),
        (
            "    - {sleeveType: Normal sleeve, modelAggId: 30, targetAllocation: 50, managementStyleId: 30,",
            "    - {sleeveType: Normal sleeve, modelAggId: 30, targetAllocation: 45, managementStyleId: 30,",
        ),
    ]
    assert new[0].startswith("# yaml-language-server") and "# Registration 31547" in new[1]  # comments intact
    assert cli("validate", str(tree)).code == 0
    assert cli("plan", str(tree), "--detailed-exitcode").code == 0


def test_a_live_state_that_breaks_a_sleeve_rule_is_not_adopted_and_its_file_stays(env, cli, converged):
    tree = converged
    okafor = tree / "registrations" / "east" / "okafor-trust.yaml"
    before = okafor.read_text()
    live = httpx.get(
        f"{env.url}/api/v1/Trading/Sleeve/Registrations/31550",
        headers={"Authorization": f"Session {env.creds.orion_token}"},
    ).json()
    edit(env, 31550, "ops", sleeves={sleeve_id(live, 36): {"targetAllocation": 70}})  # now sums to 115
    dry = cli("drift", str(tree), "--adopt", "--dry-run")  # one verdict, never "the manifests match"
    assert dry.code == 2 and "Nothing to adopt; 1 drift(s) left as they are (above)" in dry.out
    assert "match live state" not in dry.out + dry.err
    r = cli("drift", str(tree), "--adopt")
    assert r.code == 2
    assert (
        "SleeveRegistration/okafor-trust: not adopted: targetAllocation sums over Normal and Unmanaged sleeves" in r.err
    )
    assert "to 115, not 100" in r.err and okafor.read_text() == before


def test_structure_is_adopted_in_the_style_of_the_neighbours_and_missing_tickets_are_left(env, cli, tmp_path):
    tree = tmp_path / "m"
    shutil.copytree(ROOT / "manifests", tree)
    r = cli("drift", str(tree), "--adopt", "--dry-run")  # the demo: a sleeve gone from live, one only live
    assert r.code == 2
    assert (
        "-    - {sleeveType: Unmanaged sleeve, targetAllocation: 10,\n"
        "-       contributionAllocation: 0, distributionAllocation: 0}\n"
    ) in r.out
    assert (
        "+    - {sleeveType: Normal sleeve, modelAggId: 52, targetAllocation: 0, contributionAllocation: 0, "
        "distributionAllocation: 0}\n"
    ) in r.out
    assert "left  TradeInstruction/10000002: missing at SEI; not adopted" in r.err
    assert r.out.count("+++ b/") == 3 and writes(env) == 0


def _git(cwd, *args) -> str:
    import subprocess

    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_adopt_pr_pushes_a_branch_and_opens_one_pull_request_with_the_evidence_then_updates_it(
    env, cli, tmp_path, monkeypatch
):
    from ..helpers.fake_github import TOKEN, FakeGitHub

    repo, origin = tmp_path / "repo", tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", str(origin))
    repo.mkdir()
    shutil.copytree(ROOT / "manifests", repo / "manifests")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "manifests")
    _git(repo, "remote", "add", "origin", str(origin))
    _git(repo, "push", "-q", "origin", "main")
    monkeypatch.chdir(repo)
    assert cli("apply", "--auto-approve").code == 0
    edit(env, 31549, "jdoe", set={"isDoNotTrade": False})
    fake = FakeGitHub()
    try:
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        monkeypatch.setenv("GITHUB_REPOSITORY", "acme/manifests")
        monkeypatch.setenv("GITHUB_API_URL", fake.url)
        r = cli("github", "adopt-pr", "--report-url", "https://ci.example/runs/7")
        assert r.code == 0, r
        assert "opened pull request #500" in r.err
        (pr,) = fake.opened.values()
        assert pr["head"]["ref"] == "reconciler/adopt-drift" and pr["base"] == "main"
        assert "isDoNotTrade: true → false" in pr["body"] and "jdoe" in pr["body"]
        assert "https://ci.example/runs/7" in pr["body"] and TOKEN not in r.err
        pushed = _git(origin, "show", "reconciler/adopt-drift:manifests/registrations/east/chen-ira.yaml")
        assert "isDoNotTrade: false" in pushed
        _git(repo, "checkout", "-q", "main")
        _git(repo, "checkout", "-q", "--", ".")
        live = httpx.get(
            f"{env.url}/api/v1/Trading/Sleeve/Registrations/31547",
            headers={"Authorization": f"Session {env.creds.orion_token}"},
        ).json()
        edit(
            env,
            31547,
            "asmith",
            sleeves={sleeve_id(live, 34): {"targetAllocation": 35}, sleeve_id(live, 30): {"targetAllocation": 45}},
        )
        r = cli("github", "adopt-pr")
        assert r.code == 0, r
        assert "updated pull request #500" in r.err and len(fake.opened) == 1
        assert "asmith" in fake.opened[500]["body"] and "isDoNotTrade" in fake.opened[500]["body"]
    finally:
        fake.stop()
