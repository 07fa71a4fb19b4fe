"""One apply run's refusals, before anything is read or written, and what it says it covered."""

from __future__ import annotations

import pytest

from reconciler.apply.outcomes import ApplyResult, ItemResult, ItemStatus
from reconciler.apply.run import ApplyRequest, run_apply
from reconciler.config import Settings
from reconciler.errors import PlanBlockedError, ReconcilerError
from reconciler.manifests import ManifestStream
from reconciler.model import Source
from reconciler.plan.targeting import Targeting
from reconciler.render.apply_report import render_apply_text

from ..helpers.processes import ROOT


class Silent:
    interactive = False


def test_without_a_terminal_or_auto_approve_apply_refuses_before_any_connection(no_network):
    with pytest.raises(PlanBlockedError, match="no terminal to confirm on"):
        run_apply(ApplyRequest(None, Targeting()), ManifestStream([str(ROOT / "manifests")]), Settings(), Silent())


def test_an_unwritable_report_path_is_refused_before_any_connection(no_network, tmp_path):
    request = ApplyRequest(None, Targeting(), auto_approve=True, report_file=str(tmp_path / "missing" / "r.json"))
    with pytest.raises(ReconcilerError, match="does not exist"):
        run_apply(request, ManifestStream([str(ROOT / "manifests")]), Settings(), Silent())


def test_a_selection_says_how_many_resources_it_left_unchecked():
    selected, unchecked = 5, 4  # the numbers the stream counts (tests/e2e/test_one_workspace.py runs them)
    item = ItemResult("TradeInstruction/1", "create", ItemStatus.APPLIED, "accepted", Source("t.yaml", 1))
    text = render_apply_text(ApplyResult((item,), (), True, False, "s", "f", None, unchecked, selected))
    assert "converged for the 5 selected resources; 4 others left out" in text.splitlines()[-1]
    whole = render_apply_text(ApplyResult((item,), (), True, False, "s", "f", None))
    assert whole.splitlines()[-1].endswith("converged: live state matches the manifests.")
