"""Where a run is happening, for the records people read (lease holders, audits, PR comments)."""

from __future__ import annotations

import os
from typing import Mapping

__all__ = ["ci_run_url"]


def ci_run_url(env: Mapping[str, str] | None = None) -> str | None:
    """The CI run's URL: GitHub Actions' run page, else GitLab's job URL, else None."""
    env = os.environ if env is None else env
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        return (f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env['GITHUB_REPOSITORY']}"
                f"/actions/runs/{env['GITHUB_RUN_ID']}")
    return env.get("CI_JOB_URL") or None
