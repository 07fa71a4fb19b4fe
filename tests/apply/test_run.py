"""One apply run's refusals, before anything is read or written, and what it says it covered."""

from __future__ import annotations

import pytest

from reconciler.apply.outcomes import ApplyResult, ItemResult, ItemStatus
from reconciler.apply.run import ApplyRequest, _scope, run_apply
from reconciler.config import Settings
from reconciler.errors import PlanBlockedError, ReconcilerError
from reconciler.manifests import load_manifests
from reconciler.model import Source
from reconciler.plan.targeting import Targeting
from reconciler.render.apply_report import render_apply_text

from ..helpers.processes import ROOT


class Silent:
    interactive = False


def test_without_a_terminal_or_auto_approve_apply_refuses_before_any_connection(no_network):
    manifests = load_manifests([str(ROOT / "manifests")])
    with pytest.raises(PlanBlockedError, match="no terminal to confirm on"):
        run_apply(ApplyRequest(None, Targeting()), manifests, Settings(), Silent())


def test_an_unwritable_report_path_is_refused_before_any_connection(no_network, tmp_path):
    manifests = load_manifests([str(ROOT / "manifests")])
    request = ApplyRequest(None, Targeting(), auto_approve=True, report_file=str(tmp_path / "missing" / "r.json"))
    with pytest.raises(ReconcilerError, match="does not exist"):
        run_apply(request, manifests, Settings(), Silent())


def test_a_selection_says_how_many_resources_it_left_unchecked():
    manifests = load_manifests([str(ROOT / "manifests")])
    selected, unchecked = _scope(manifests, ApplyRequest(None, Targeting(targets=("TradeInstruction/*",))))
    assert (selected, unchecked) == (5, 4)
    item = ItemResult("TradeInstruction/1", "create", ItemStatus.APPLIED, "accepted", Source("t.yaml", 1))
    text = render_apply_text(ApplyResult((item,), (), True, False, "s", "f", None, unchecked, selected))
    assert "converged for the 5 selected resources; 4 others left out" in text.splitlines()[-1]
    whole = render_apply_text(ApplyResult((item,), (), True, False, "s", "f", None))
    assert whole.splitlines()[-1].endswith("converged: live state matches the manifests.")
