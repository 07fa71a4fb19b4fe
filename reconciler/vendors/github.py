"""GitHub's REST API, the little the GitOps workflow needs: comments, statuses, issues, workflow runs.

GITHUB_TOKEN (from the CI's secret store) is held as a Secret and masked in every message;
GITHUB_API_URL may point at GitHub Enterprise, or at a loopback fake in tests.
"""

from __future__ import annotations

from typing import Any

import httpx

from reconciler.config import Secret, require_safe_url
from reconciler.vendors.auth import TokenAuth
from reconciler.vendors.http import VendorHttp
from reconciler.vendors.redaction import Redactor
from reconciler.vendors.retry import HttpPolicy

__all__ = ["GitHubClient"]


class GitHubClient:
    def __init__(
        self,
        token: Secret,
        repository: str,
        api_url: str = "https://api.github.com",
        client: httpx.Client | None = None,
        policy: HttpPolicy = HttpPolicy(max_attempts=3, deadline=60),
    ):
        self.repo = repository
        base = require_safe_url(api_url, "GITHUB_API_URL")
        self._client = client or httpx.Client(
            base_url=base,
            timeout=30,
            trust_env=False,
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
        )
        redact = Redactor([token.reveal()])
        auth = TokenAuth(
            vendor="GitHub",
            given=token.reveal(),
            given_variable="GITHUB_TOKEN",
            mint=None,
            mint_variables="a token with the workflow's permissions",
            headers=lambda t: {"Authorization": f"Bearer {t}"},
        )
        self.http = VendorHttp(
            "github", self._client, auth=auth, redact=redact, policy=policy, url_variable="GITHUB_API_URL"
        )

    def close(self) -> None:
        self._client.close()

    def _get_all(self, path: str, params: dict | None = None) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            rows = self.http.request(
                "GET", path, safe=True, params={**(params or {}), "per_page": 100, "page": page}
            ).json()
            rows = rows.get("workflow_runs", []) if isinstance(rows, dict) else rows
            out.extend(rows)
            if len(rows) < 100:
                return out
            page += 1

    # --- comments on a pull request -----------------------------------------------------------------

    def comments(self, number: int) -> list[dict]:
        return self._get_all(f"/repos/{self.repo}/issues/{number}/comments")

    def create_comment(self, number: int, body: str) -> dict:
        return self.http.request(
            "POST", f"/repos/{self.repo}/issues/{number}/comments", safe=False, json_body={"body": body}
        ).json()

    def update_comment(self, comment_id: int, body: str) -> dict:
        # setting a body is idempotent, so repeating it after a lost answer is harmless
        return self.http.request(
            "PATCH", f"/repos/{self.repo}/issues/comments/{comment_id}", safe=True, json_body={"body": body}
        ).json()

    def delete_comment(self, comment_id: int) -> None:
        self.http.request("DELETE", f"/repos/{self.repo}/issues/comments/{comment_id}", safe=True)

    # --- statuses, pull requests, runs --------------------------------------------------------------

    def set_status(self, sha: str, state: str, description: str, context: str = "reconciler/plan") -> None:
        self.http.request(
            "POST",
            f"/repos/{self.repo}/statuses/{sha}",
            safe=True,
            json_body={"state": state, "description": description[:140], "context": context},
        )

    def pulls_for_commit(self, sha: str) -> list[dict]:
        return self.http.request("GET", f"/repos/{self.repo}/commits/{sha}/pulls", safe=True).json()

    def pull(self, number: int) -> dict:
        return self.http.request("GET", f"/repos/{self.repo}/pulls/{number}", safe=True).json()

    def reviews(self, number: int) -> list[dict]:
        """A pull request's reviews, oldest first (each: user.login, state, submitted_at, commit_id)."""
        return self._get_all(f"/repos/{self.repo}/pulls/{number}/reviews")

    def runs(self, head_sha: str, event: str = "pull_request") -> list[dict]:
        return self._get_all(f"/repos/{self.repo}/actions/runs", {"head_sha": head_sha, "event": event})

    def issue_labels(self, number: int) -> list[dict]:
        return self._get_all(f"/repos/{self.repo}/issues/{number}/labels")

    def add_labels(self, number: int, labels: list[str]) -> None:
        # adding a label twice is harmless, so repeating it after a lost answer is too
        self.http.request("POST", f"/repos/{self.repo}/issues/{number}/labels", safe=True, json_body={"labels": labels})

    def remove_label(self, number: int, label: str) -> None:
        from urllib.parse import quote

        self.http.request("DELETE", f"/repos/{self.repo}/issues/{number}/labels/{quote(label, safe='')}", safe=True)

    def open_pulls(self, head_branch: str) -> list[dict]:
        owner = self.repo.split("/", 1)[0]
        return self.http.request(
            "GET", f"/repos/{self.repo}/pulls", safe=True, params={"state": "open", "head": f"{owner}:{head_branch}"}
        ).json()

    def create_pull(self, title: str, head: str, base: str, body: str) -> dict:
        return self.http.request(
            "POST",
            f"/repos/{self.repo}/pulls",
            safe=False,
            json_body={"title": title, "head": head, "base": base, "body": body},
        ).json()

    def update_pull(self, number: int, **fields: Any) -> dict:
        return self.http.request("PATCH", f"/repos/{self.repo}/pulls/{number}", safe=True, json_body=fields).json()

    # --- issues -------------------------------------------------------------------------------------

    def open_issues(self, label: str) -> list[dict]:
        return self._get_all(f"/repos/{self.repo}/issues", {"state": "open", "labels": label})

    def create_issue(self, title: str, body: str, label: str) -> dict:
        return self.http.request(
            "POST",
            f"/repos/{self.repo}/issues",
            safe=False,
            json_body={"title": title, "body": body, "labels": [label]},
        ).json()

    def update_issue(self, number: int, **fields: Any) -> dict:
        return self.http.request("PATCH", f"/repos/{self.repo}/issues/{number}", safe=True, json_body=fields).json()
