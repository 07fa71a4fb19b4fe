"""GitOps: the workflow file, plan comments and statuses against a fake GitHub, drift issues, pre-commit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import httpx
import pytest
import yaml

from reconciler.render.markdown import MARKER

from ..helpers.fake_github import TOKEN
from ..helpers.processes import ROOT
from ..helpers.sandbox import sei_holds_a_conflicting_ticket

pytestmark = pytest.mark.integration
WORKFLOW = ROOT / ".github" / "workflows" / "reconciler.yml"


# --- the workflow file ---------------------------------------------------------------------------


def _steps(job: dict) -> list[str]:
    return [str(s.get("run", "")) + " " + str(s.get("uses", "")) for s in job["steps"]]


def test_workflow_has_the_plan_apply_and_drift_paths():
    doc = yaml.safe_load(WORKFLOW.read_text())
    triggers = doc.get("on", doc.get(True))  # PyYAML reads the bare key `on` as True (YAML 1.1)
    assert {"pull_request", "push", "schedule"} <= set(triggers)
    assert triggers["push"]["branches"] == ["main"]
    plan = " | ".join(_steps(doc["jobs"]["plan"]))
    assert "reconciler validate manifests" in plan
    assert (
        'reconciler plan manifests "${scope[@]}" --out plan.json --format markdown --detailed-exitcode > plan.md'
        in plan
    )
    # a pull request plans what it changed since its base (issue 30), unless the repository opts out
    assert 'scope=(--changed-since "$BASE_SHA")' in plan and 'if [ "$FULL_PLAN" = "true" ]; then scope=(); fi' in plan
    (plan_step,) = [s for s in doc["jobs"]["plan"]["steps"] if s.get("name") == "Plan"]
    assert plan_step["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    checkouts = [s for job in ("plan", "apply") for s in doc["jobs"][job]["steps"] if "checkout" in s.get("uses", "")]
    assert all(c["with"]["fetch-depth"] == 0 for c in checkouts)  # the base commit is there to diff against
    # the checked-manifests cache is restored for plans only: apply never unpickles what a PR job wrote
    assert "actions/cache@" in " | ".join(_steps(doc["jobs"]["plan"]))
    assert "actions/cache@" not in " | ".join(_steps(doc["jobs"]["apply"]) + _steps(doc["jobs"]["drift"]))
    assert "actions/upload-artifact@" in plan
    assert "reconciler github comment --markdown plan.md" in plan and "--exit-code" in plan and "--sha" in plan
    apply = " | ".join(_steps(doc["jobs"]["apply"]))
    assert "reconciler github find-plan" in apply and "actions/download-artifact@" in apply
    assert "reconciler apply plan.json --report apply-report.json" in apply
    assert apply.count("actions/upload-artifact@") == 2  # the apply report, and a stale plan's fresh one
    drift = " | ".join(_steps(doc["jobs"]["drift"]))
    assert "reconciler drift manifests --format markdown" in drift and "reconciler github drift-issue" in drift
    assert "schedule" in doc["jobs"]["drift"]["if"]


def test_workflow_takes_secrets_from_the_store_and_never_prints_them():
    text = WORKFLOW.read_text()
    doc = yaml.safe_load(text)
    assert set(doc["env"]) == {"CI"} and doc["permissions"] == {}  # nothing at workflow level
    for name, job in doc["jobs"].items():
        assert job["permissions"], name  # each job says what it needs
        for key, value in job.get("env", {}).items():
            if any(w in key for w in ("TOKEN", "PASSWORD", "APP_KEY", "SECRET")):
                assert value == f"${{{{ secrets.{key} }}}}", (name, key)
    runs = "\n".join(str(s.get("run", "")) for job in doc["jobs"].values() for s in job["steps"])
    for secret in ("TOKEN", "PASSWORD", "APP_KEY", "APP_SECRET", "PEM"):
        for line in runs.splitlines():
            if secret in line and ("echo" in line or "cat " in line):
                assert ">" in line and "$GITHUB_ENV" in line or "RUNNER_TEMP" in line, line


def test_workflow_never_installs_a_bare_package_name():
    doc = yaml.safe_load(WORKFLOW.read_text())
    installs = [s for job in doc["jobs"].values() for s in job["steps"] if "pip install" in str(s.get("run", ""))]
    assert len(installs) == 3
    for step in installs:
        assert step["env"]["PACKAGE"] == "${{ vars.RECONCILER_PACKAGE }}"
        assert 'if [ -z "$PACKAGE" ]' in step["run"] and "exit 1" in step["run"]
        assert "|| 'reconciler'" not in step["run"] and 'pip install --no-deps "$PACKAGE"' in step["run"]


def test_workflow_a_security_reviewer_signs_pins_credentials_expressions_and_hashes():
    """Actions by full commit SHA; checkouts that keep no token; no `${{` inside a script (an input or a
    branch name would be shell text); every dependency installed from the hash-checked lock."""
    doc = yaml.safe_load(WORKFLOW.read_text())
    steps = [s for job in doc["jobs"].values() for s in job["steps"]]
    uses = [s["uses"] for s in steps if "uses" in s]
    assert len(uses) == 12  # every one pinned below
    for ref in uses:
        _, _, pin = ref.partition("@")
        assert len(pin) == 40 and all(c in "0123456789abcdef" for c in pin), ref
    assert all(
        "# v" in line for line in WORKFLOW.read_text().splitlines() if "uses: actions/" in line
    )  # the tag, for people
    checkouts = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 3 and all(s["with"]["persist-credentials"] is False for s in checkouts)
    scripts = [s for s in steps if "run" in s]
    assert scripts and not [s.get("name") for s in scripts if "${{" in s["run"]]
    installs = [s["run"] for s in scripts if "pip install" in s["run"]]
    assert len(installs) == 3
    for run in installs:
        lines = [ln.strip() for ln in run.splitlines() if "pip install" in ln]
        assert lines == [
            "pip install --require-hashes --no-deps -r .github/reconciler-requirements.lock",
            'pip install --no-deps "$PACKAGE"',
        ]
        assert "pip check" in run


def test_the_dependency_lock_matches_pyproject_and_hashes_every_file():
    """The lock the workflow installs from holds every runtime dependency of pyproject.toml at a version
    its specifier allows, and a hash for each pin: regenerate it (the command is in its header) whenever
    this fails."""
    import tomllib

    from packaging.requirements import Requirement

    lock = (ROOT / ".github" / "reconciler-requirements.lock").read_text()
    pins: dict[str, str] = {}
    hashed: dict[str, int] = {}
    current = None
    for line in lock.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name, _, version = line.split(" ")[0].partition("==")
            current = name.lower().replace("_", "-")
            pins[current] = version
            hashed[current] = 0
        elif "--hash=sha256:" in line and current:
            hashed[current] += 1
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in map(Requirement, deps):
        name = dep.name.lower().replace("_", "-")
        assert name in pins, f"{name} is a dependency but not in the lock"
        assert dep.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {dep.specifier}"
    assert pins and all(hashed[n] >= 1 for n in pins), [n for n in pins if not hashed[n]]
    assert "--generate-hashes" in lock and "pyproject.toml" in lock


def test_jobs_get_only_their_environment_and_sei_jobs_run_on_the_configured_runner():
    doc = yaml.safe_load(WORKFLOW.read_text())
    jobs = doc["jobs"]
    assert (jobs["plan"]["environment"], jobs["apply"]["environment"], jobs["drift"]["environment"]) == (
        "reconciler-plan",
        "production",
        "reconciler-audit",
    )
    for name in ("plan", "apply", "drift"):
        assert jobs[name]["runs-on"] == "${{ fromJSON(vars.RECONCILER_RUNNER || '\"ubuntu-latest\"') }}"
    plan_text = yaml.safe_dump(jobs["plan"])
    for write_capable in (
        "RECONCILER_PLAN_IDENTITY",
        "secrets.RECONCILER_BACKEND_URL",
        "ORION_PASSWORD",
        "SEI_APP_SECRET",
    ):
        assert write_capable not in plan_text, write_capable


def test_a_stale_plan_is_never_replanned_and_applied_unreviewed_by_default():
    doc = yaml.safe_load(WORKFLOW.read_text())
    (step,) = [s for s in doc["jobs"]["apply"]["steps"] if s.get("name") == "Apply"]
    lines = [ln.strip() for ln in step["run"].splitlines()]
    opted = lines.index('if [ "$REPLAN_ON_MERGE" = "true" ]; then')
    assert step["env"]["REPLAN_ON_MERGE"] == "${{ vars.RECONCILER_REPLAN_ON_MERGE }}"
    assert "--on-stale replan" in lines[opted + 2] and "--auto-approve" in lines[opted + 2]
    default = next(ln for ln in lines[opted + 3 :] if ln.startswith("reconciler apply"))
    assert default.startswith("reconciler apply plan.json --report") and "--auto-approve" not in default
    assert "--on-stale" not in default
    names = [s.get("name", "") for s in doc["jobs"]["apply"]["steps"]]
    assert any("post the fresh one on the merged pull request" in n for n in names)
    assert "plan_run_id" in doc["on" if "on" in doc else True]["workflow_dispatch"]["inputs"]


def test_validate_failures_still_comment_and_set_a_status_for_the_newest_commit():
    doc = yaml.safe_load(WORKFLOW.read_text())
    (comment,) = [s for s in doc["jobs"]["plan"]["steps"] if "github comment" in str(s.get("run", ""))]
    assert comment["if"] == "always()"
    assert "--errors validate.txt" in comment["run"] and '--sha "$HEAD_SHA"' in comment["run"]
    assert comment["env"]["HEAD_SHA"] == "${{ github.event.pull_request.head.sha }}"
    assert "steps.validate.outputs.exitcode != '0' && '1'" in comment["env"]["EXIT_CODE"]
    drift = "\n".join(str(s.get("run", "")) for s in doc["jobs"]["drift"]["steps"])
    assert drift.count("reconciler drift ") == 1 and "--also html=drift.html" in drift  # one read of live state


def test_workflow_applies_on_the_shared_backend_and_plans_only_read_it():
    """The apply step holds the write-capable backend URL; the plan step at most a read-only one; neither at
    workflow level."""
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert "RECONCILER_BACKEND_URL" not in doc["env"]
    (apply_step,) = [s for s in doc["jobs"]["apply"]["steps"] if s.get("name") == "Apply"]
    assert apply_step["env"]["RECONCILER_BACKEND_URL"] == "${{ secrets.RECONCILER_BACKEND_URL }}"
    (plan_step,) = [s for s in doc["jobs"]["plan"]["steps"] if s.get("name") == "Plan"]
    assert plan_step["env"]["RECONCILER_BACKEND_URL"] == "${{ secrets.RECONCILER_BACKEND_READONLY_URL }}"
    # the scheduled drift audit records its findings in the shared history (issue 31); it runs on main only
    (drift_step,) = [s for s in doc["jobs"]["drift"]["steps"] if s.get("id") == "drift"]
    assert drift_step["env"]["RECONCILER_BACKEND_URL"] == "${{ secrets.RECONCILER_BACKEND_URL }}"


def test_workflow_gives_the_identity_only_to_apply_and_encrypts_what_pull_requests_upload():
    text = WORKFLOW.read_text()
    doc = yaml.safe_load(text)
    assert "RECONCILER_PLAN_IDENTITY" not in doc["env"] and text.count("secrets.RECONCILER_PLAN_IDENTITY") == 1
    (apply_step,) = [s for s in doc["jobs"]["apply"]["steps"] if s.get("name") == "Apply"]
    assert apply_step["env"]["RECONCILER_PLAN_IDENTITY"] == "${{ secrets.RECONCILER_PLAN_IDENTITY }}"
    assert apply_step["env"]["RECONCILER_COMMIT"] == "${{ steps.pr.outputs.head_sha }}"
    (plan_step,) = [s for s in doc["jobs"]["plan"]["steps"] if s.get("name") == "Plan"]
    assert plan_step["env"]["RECONCILER_PLAN_RECIPIENTS"] == "${{ vars.RECONCILER_PLAN_RECIPIENTS }}"
    assert plan_step["env"]["RECONCILER_COMMIT"] == "${{ github.event.pull_request.head.sha }}"
    drift = "\n".join(str(s.get("run", "")) for s in doc["jobs"]["drift"]["steps"])
    assert "--also html=drift.html" in drift and "drift.html --no-encrypt" not in drift


# --- plan comments -------------------------------------------------------------------------------


def _plan(cli, tmp_path, *args):
    out = tmp_path / "plan.json"
    r = cli("plan", "--out", str(out), "--detailed-exitcode", *args)
    return out, r.code


def test_first_push_creates_one_comment_and_a_status(env, gh, cli, tmp_path):
    plan, code = _plan(cli, tmp_path)
    r = cli("github", "comment", str(plan), "--pr", "7", "--sha", "abc123", "--exit-code", str(code))
    assert r.code == 0, r
    (comment,) = gh.comments.values()
    assert comment["issue"] == 7 and comment["body"].startswith(MARKER)
    assert "3 to create, 3 to update, 1 to remove" in comment["body"]
    assert gh.statuses == [
        {
            "sha": "abc123",
            "state": "success",
            "context": "reconciler/plan",
            "description": "3 to create, 3 to update, 1 to remove, 0 conflicts; 4 submissions "
            "(1 Orion batch, 3 SEI requests)",
        }
    ]
    assert TOKEN not in r.out + r.err


def test_an_encrypted_plan_is_commented_from_its_markdown_and_a_hard_policy_failure_is_shown(
    env, gh, cli, tmp_path, monkeypatch
):
    """The PR job cannot read its encrypted plan: it posts the markdown `plan` printed, failures included."""
    import shutil

    from reconciler.sealing import generate_identity

    monkeypatch.setenv("RECONCILER_PLAN_RECIPIENTS", generate_identity()[0])
    tree = tmp_path / "m"
    shutil.copytree(ROOT / "manifests", tree)
    (tree / "p.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Policy\nmetadata: {name: desk}\nspec: {limits: {maxTicketNotional: 35000}}\n"
    )
    plan, md = tmp_path / "plan.json", tmp_path / "plan.md"
    r = cli("plan", str(tree), "--out", str(plan), "--format", "markdown", "--detailed-exitcode")
    assert r.code == 1 and plan.read_bytes().startswith(b"age-encryption.org/v1")
    md.write_text(r.out)
    c = cli("github", "comment", "--markdown", str(md), "--pr", "7", "--sha", "abc", "--exit-code", str(r.code))
    assert c.code == 0, c
    (comment,) = gh.comments.values()
    assert "**Policies:** 0 passed, 1 failed" in comment["body"] and "TradeInstruction/10000003" in comment["body"]
    assert "Environment: **custom**" in comment["body"]
    assert gh.statuses[-1]["state"] == "failure" and "hard policy" in gh.statuses[-1]["description"]


def test_a_validate_failure_is_posted_with_its_errors_and_a_failure_status_for_the_newest_commit(
    gh, cli, write, tmp_path, monkeypatch
):
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    bad = write(
        "m/r.yaml",
        "apiVersion: reconciler/v1\nkind: SleeveRegistration\nmetadata: {name: r}\n"
        "spec: {registrationId: 1, accountSleeves: [{sleeveType: Normal sleeve}]}\n",
    )
    v = cli("validate", str(bad.parent))
    errors = tmp_path / "validate.txt"
    errors.write_text(v.err)
    r = cli(
        "github",
        "comment",
        "--markdown",
        str(tmp_path / "missing.md"),
        "--errors",
        str(errors),
        "--pr",
        "9",
        "--sha",
        "feedbeef1234567",
        "--exit-code",
        "1",
    )
    assert r.code == 0, r
    (comment,) = gh.comments.values()
    assert "### reconciler plan failed for feedbeef1234" in comment["body"]
    assert "r.yaml:4:" in comment["body"] and "a Normal sleeve must name a model" in comment["body"]
    assert "commit `feedbeef1234`" in comment["body"] and "/actions/runs/4242)" in comment["body"]
    assert gh.statuses[-1]["state"] == "failure" and gh.statuses[-1]["description"].startswith(
        "validate failed: 1 error"
    )


def test_the_comment_puts_the_summary_context_and_irreversible_changes_above_the_fold(
    env, gh, cli, tmp_path, monkeypatch
):
    """Removals, creates, a conflict and an error (a failed hard policy) in one plan: each part, the label,
    the status and the full plan in the job summary."""
    import shutil

    sei_holds_a_conflicting_ticket(env)
    tree = tmp_path / "m"
    shutil.copytree(ROOT / "manifests", tree)
    (tree / "p.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Policy\nmetadata: {name: desk}\nspec: {limits: {maxTicketNotional: 35000}}\n"
    )
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_RUN_ID", "77")
    r = cli("plan", str(tree), "--format", "markdown", "--detailed-exitcode")
    md = tmp_path / "plan.md"
    md.write_text(r.out)
    c = cli(
        "github", "comment", "--markdown", str(md), "--pr", "3", "--sha", "0123456789abcdef", "--exit-code", str(r.code)
    )
    assert c.code == 0, c
    (comment,) = gh.comments.values()
    body = comment["body"]
    order = [
        body.index(x)
        for x in (
            "### reconciler plan: 2 to create, 3 to update, 1 to remove, 1 conflict",
            "commit `0123456789ab`",
            "Environment: **custom**",
            "> ⚠️ **1 sleeve removal**",
            "> ⚠️ **2 trade instructions to submit**",
            "**Policies:** 0 passed, 1 failed",
            "> **Apply is blocked** by 1 conflict",
            "| | Resource | Action |",
        )
    ]
    assert order == sorted(order)  # summary first; what cannot be undone above the table
    assert "/actions/runs/77)" in body
    assert gh.labels[3] == ["reconciler: plan failed"] and gh.statuses[-1]["state"] == "failure"
    assert summary.read_text().count("### reconciler plan:") == 1
    ok = cli("plan", "--target", "SleeveRegistration/rivera-household", "--format", "markdown", "--detailed-exitcode")
    md.write_text(ok.out)
    cli("github", "comment", "--markdown", str(md), "--pr", "3", "--exit-code", str(ok.code))
    assert gh.labels[3] == ["reconciler: no changes"]  # exactly one plan label, the newest


def test_next_push_updates_the_same_comment(env, gh, cli, tmp_path):
    gh.comments[1] = {"id": 1, "issue": 7, "body": "LGTM, a human's comment"}
    plan, code = _plan(cli, tmp_path)
    cli("github", "comment", str(plan), "--pr", "7", "--exit-code", str(code))
    (ours,) = [c for c in gh.comments.values() if c["body"].startswith(MARKER)]
    plan2, code2 = _plan(cli, tmp_path, "--target", "SleeveRegistration/*")
    r = cli("github", "comment", str(plan2), "--pr", "7", "--exit-code", str(code2))
    assert "1 updated" in r.err
    mine = [c for c in gh.comments.values() if c["body"].startswith(MARKER)]
    assert [c["id"] for c in mine] == [ours["id"]] and "0 to create, 3 to update" in mine[0]["body"]
    assert gh.comments[1]["body"] == "LGTM, a human's comment"  # never touched
    methods = [m for m, path, _ in gh.calls if "comments" in path]
    assert methods.count("POST") == 1 and methods.count("PATCH") == 1


def test_a_long_plan_is_split_and_extra_parts_are_removed_later(env, gh, cli, tmp_path):
    """400 changed registrations overflow one comment; a later, smaller plan removes the extra parts."""
    from ..benchmarks.estate import write_estate

    httpx.put(f"{env.url}/_sandbox/state", json=write_estate(tmp_path / "m", 400, drift=1.0), timeout=60)
    plan = tmp_path / "big.json"
    assert cli("plan", str(tmp_path / "m"), "--out", str(plan)).code == 0
    cli("github", "comment", str(plan), "--pr", "9", "--exit-code", "2")
    parts = sorted((c for c in gh.comments.values() if c["issue"] == 9), key=lambda c: c["id"])
    assert len(parts) > 1 and all(len(c["body"]) <= 60_000 for c in parts)
    assert all(c["body"].startswith(MARKER) for c in parts) and f"_Part 1 of {len(parts)}" in parts[0]["body"]
    small = tmp_path / "small.json"
    cli("plan", str(tmp_path / "m"), "--target", "SleeveRegistration/reg-200000", "--out", str(small))
    r = cli("github", "comment", str(small), "--pr", "9", "--exit-code", "2")
    assert f"{len(parts) - 1} deleted" in r.err
    (left,) = [c for c in gh.comments.values() if c["issue"] == 9]
    assert left["id"] == parts[0]["id"] and "Part" not in left["body"] and "0 to create, 1 to update" in left["body"]


def test_a_failed_plan_comments_and_fails_the_status(gh, cli):
    r = cli("github", "comment", "--pr", "3", "--sha", "def456", "--exit-code", "1")
    assert r.code == 0
    (comment,) = gh.comments.values()
    assert "reconciler plan failed" in comment["body"]
    assert gh.statuses[-1]["state"] == "failure"


def test_missing_github_environment_is_a_clear_error(cli, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    r = cli("github", "comment", "--pr", "3", "--exit-code", "1")
    assert r.code == 1 and "GITHUB_TOKEN and GITHUB_REPOSITORY must be set" in r.err


def test_find_plan_names_the_merged_pr_and_its_run(gh, cli):
    gh.pulls["merge1"] = [{"number": 42, "merged_at": "2026-11-21T10:00:00Z", "head": {"sha": "head1"}}]
    gh.runs["head1"] = [
        {"id": 5, "name": "reconciler", "conclusion": "success", "created_at": "2026-11-21T09:00:00Z"},
        {"id": 6, "name": "reconciler", "conclusion": "success", "created_at": "2026-11-21T09:30:00Z"},
        {"id": 7, "name": "reconciler", "conclusion": "failure", "created_at": "2026-11-21T09:50:00Z"},
    ]
    r = cli("github", "find-plan", "--sha", "merge1", "--workflow", "reconciler")
    assert r.out.splitlines() == ["pr=42", "head_sha=head1", "run_id=6"]
    r = cli("github", "find-plan", "--sha", "unknown")
    assert r.out.splitlines() == ["pr=", "head_sha=", "run_id="]


def test_drift_issue_is_opened_updated_and_closed(env, gh, cli, tmp_path):
    report = tmp_path / "drift.md"
    code = cli("drift", "--format", "markdown", "--output", str(report)).code
    assert code == 2
    assert "opened issue #1" in cli("github", "drift-issue", str(report), "--exit-code", "2").err
    assert "updated issue #1" in cli("github", "drift-issue", str(report), "--exit-code", "2").err
    assert len(gh.issues) == 1 and gh.issues[1]["labels"] == ["reconciler-drift"]
    assert "<!-- reconciler-drift -->" in gh.issues[1]["body"]
    cli("apply", "--auto-approve")
    code = cli("drift", "--format", "markdown", "--output", str(report)).code
    assert code == 0
    assert "closed issue #1: no drift" in cli("github", "drift-issue", str(report), "--exit-code", "0").err
    assert gh.issues[1]["state"] == "closed"
    assert cli("github", "drift-issue", str(report), "--exit-code", "1").code == 1


def test_merge_applies_the_saved_plan_or_replans_when_stale(env, cli, tmp_path):
    plan, _ = _plan(cli, tmp_path)
    # a field the manifest leaves alone, on a registration the plan touches: the payload would be stale
    httpx.patch(f"{env.url}/_sandbox/registrations/31549", json={"editedBy": "jdoe", "set": {"tolerancePercent": 5}})
    r = cli("apply", str(plan), "--on-stale", "replan")
    assert r.code == 1 and "a fresh plan needs approval" in r.err
    r = cli("apply", str(plan), "--auto-approve", "--on-stale", "replan")
    assert r.code == 0, r
    assert "The saved plan is stale, so it is not applied; planning afresh" in r.err
    assert "SleeveRegistration/chen-ira: live state changed since the plan (edited by jdoe" in r.err
    assert "converged" in r.out
    reg = httpx.get(f"{env.url}/_sandbox/state").json()["registrations"]
    assert next(r for r in reg if r["registrationId"] == 31549)["tolerancePercent"] == 5  # undeclared: kept


# --- pre-commit ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_pre_commit_try_repo_validates_a_manifests_repository(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "manifests-repo"
    shutil.copytree(ROOT / "manifests", repo / "manifests")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pc-home"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "manifests")
    cmd = [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "reconciler-validate", "--all-files"]
    ok = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert "reconciler validate" in ok.stdout and "Passed" in ok.stdout
    (repo / "manifests" / "bad.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: TradeBatch\nmetadata: {name: b}\n"
        "spec: {batchId: 20261120, instructions: []}\n"
    )
    git("add", ".")
    bad = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1
    assert "manifests/bad.yaml:4:" in bad.stdout and "quote it" in bad.stdout
