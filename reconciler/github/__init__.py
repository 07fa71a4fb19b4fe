"""GitOps on GitHub: plans on pull requests, the plan a merge applies, drift as an issue and as a pull request.

    comments.py  one plan comment per pull request (split when long), plan labels, the commit status
    runs.py      the merged pull request behind a commit, and the workflow run that saved its plan
    drift.py     the drift issue, and adoption pull requests with their evidence

The REST client itself is a vendor like Orion and SEI (vendors/github.py); `open_client` builds it from
what the CI environment provides.
"""

from __future__ import annotations

from reconciler.config.environment import RunFacts
from reconciler.errors import ConfigError
from reconciler.vendors.github import GitHubClient

__all__ = ["open_client"]


def open_client(facts: RunFacts) -> GitHubClient:
    """The GitHub API client for GITHUB_TOKEN, GITHUB_REPOSITORY and GITHUB_API_URL (as Actions sets them)."""
    if facts.github_token is None or not facts.github_repository:
        raise ConfigError(
            "GITHUB_TOKEN and GITHUB_REPOSITORY must be set (GitHub Actions sets GITHUB_REPOSITORY; "
            "pass the token with env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }})"
        )
    return GitHubClient(facts.github_token, facts.github_repository, facts.github_api_url)
