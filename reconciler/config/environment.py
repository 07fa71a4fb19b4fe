"""What the run's environment says about it, beyond Settings: CI, the commit and pull request, who runs it.

The only module (with settings.py) that reads environment variables: every other module is handed a
`RunFacts`, so a test states the facts it needs instead of patching os.environ, and a reader finds
every variable the tool honours in config/.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.secret import Secret

__all__ = ["RunFacts", "child_env", "ci_run_url", "run_facts"]


def child_env(**extra: str) -> dict[str, str]:
    """The environment a child process (git) inherits, with `extra` set: this module is the one reader."""
    return {**os.environ, **extra}


def ci_run_url(env: Mapping[str, str] | None = None) -> str | None:
    """The CI run's URL: GitHub Actions' run page, else GitLab's job URL, else None."""
    env = os.environ if env is None else env
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        return (
            f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env['GITHUB_REPOSITORY']}"
            f"/actions/runs/{env['GITHUB_RUN_ID']}"
        )
    return env.get("CI_JOB_URL") or None


@dataclass(frozen=True)
class RunFacts:
    """Facts about this run that come from its environment, read once."""

    ci: bool  # CI=true (GitHub Actions, GitLab and most CI systems set it)
    run_url: str | None  # the CI run, for lease holders, audits and PR comments
    os_user: str  # who is logged in
    ci_actor: str | None  # GITHUB_ACTOR / GITLAB_USER_LOGIN: who started the CI run
    commit: str | None  # RECONCILER_COMMIT, else GITHUB_SHA, else CI_COMMIT_SHA
    expected_commit: str | None  # RECONCILER_COMMIT: the commit a reviewed plan must be bound to
    pull_request: int | None  # RECONCILER_PULL_REQUEST, else GITHUB_REF refs/pull/N/…
    step_summary: str | None  # GITHUB_STEP_SUMMARY: where a job summary goes
    github_token: Secret | None  # GITHUB_TOKEN (a secret)
    github_repository: str | None  # GITHUB_REPOSITORY, owner/name
    github_api_url: str  # GITHUB_API_URL (GitHub Enterprise), else api.github.com
    github_server_url: str  # GITHUB_SERVER_URL: where `git push` authenticates (adopt-pr)
    stats: bool  # RECONCILER_STATS=1: plan prints phase timings
    no_color: bool  # NO_COLOR (no-color.org)
    state_home: Path  # $XDG_STATE_HOME, else ~/.local/state
    cache_dir: Path  # RECONCILER_CACHE_DIR, else $XDG_CACHE_HOME/reconciler, else ~/.cache/reconciler

    @property
    def operator(self) -> str:
        """Who is applying or auditing: the CI actor where there is one, else the OS user."""
        return self.ci_actor or self.os_user


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


def run_facts(env: Mapping[str, str] | None = None) -> RunFacts:
    env = os.environ if env is None else env
    pr = env.get("RECONCILER_PULL_REQUEST")
    ref = env.get("GITHUB_REF", "")
    if not pr and ref.startswith("refs/pull/"):
        pr = ref.split("/")[2]
    return RunFacts(
        ci=_truthy(env.get("CI")),
        run_url=ci_run_url(env),
        os_user=_os_user(),
        ci_actor=env.get("GITHUB_ACTOR") or env.get("GITLAB_USER_LOGIN") or None,
        commit=env.get("RECONCILER_COMMIT") or env.get("GITHUB_SHA") or env.get("CI_COMMIT_SHA") or None,
        expected_commit=env.get("RECONCILER_COMMIT") or None,
        pull_request=int(pr) if pr and str(pr).isdigit() else None,
        step_summary=env.get("GITHUB_STEP_SUMMARY") or None,
        github_token=Secret(env["GITHUB_TOKEN"]) if env.get("GITHUB_TOKEN") else None,
        github_repository=env.get("GITHUB_REPOSITORY") or None,
        github_api_url=env.get("GITHUB_API_URL") or "https://api.github.com",
        github_server_url=env.get("GITHUB_SERVER_URL") or "https://github.com",
        stats=bool(env.get("RECONCILER_STATS")),
        no_color="NO_COLOR" in env,
        state_home=Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"),
        cache_dir=Path(
            env.get("RECONCILER_CACHE_DIR") or Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reconciler"
        ),
    )
