"""Renderings pinned by golden files (tests/golden/): the plan as a reviewer reads it, in text and markdown.
Rerun with UPDATE_GOLDEN=1 when a change is intended, and review the diff like any other."""

from __future__ import annotations

import os
import re

import pytest

from reconciler.render.markdown import MARKER

from ..helpers.processes import ROOT
from ..helpers.sandbox import writes

pytestmark = pytest.mark.integration
GOLDEN = ROOT / "tests" / "golden"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; rerun with UPDATE_GOLDEN=1 if the change is intended"


def test_plan_text_matches_golden_and_writes_nothing(env, cli):
    r = cli("plan")
    assert r.code == 0, r
    check_golden("plan.txt", r.out)
    assert writes(env) == 0


def test_plan_markdown_matches_golden(env, cli):
    r = cli("plan", "--format", "markdown")
    assert r.code == 0 and r.out.startswith(MARKER)
    check_golden("plan.md", re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", r.out))  # the sandbox's port is random
