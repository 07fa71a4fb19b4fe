"""What the GitHub tests share: a fake GitHub on loopback, and this process's environment pointed at it."""

from __future__ import annotations

import pytest

from ..helpers.fake_github import TOKEN, FakeGitHub


@pytest.fixture
def gh(monkeypatch):
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/manifests")
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    yield fake
    fake.stop()
