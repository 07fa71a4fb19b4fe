"""The stages apply runs and plan explains: one tuple for both, and a stage neither knows is an error."""

from __future__ import annotations

import pytest

from reconciler.apply.context import RunContext
from reconciler.apply.evaluator import Evaluator
from reconciler.config import Settings
from reconciler.model import ManifestSet
from reconciler.plan.explain import explain_stages
from reconciler.plan.stages import Confirm, Recover

from ..helpers.state import claims_for


class _NewStage:
    """A stage someone added to stages.py and forgot to teach the evaluator and the explainer."""


def test_an_unknown_stage_raises_in_the_explainer_and_the_evaluator_never_skipped(tmp_path):
    with pytest.raises(AssertionError):
        explain_stages((Recover(), _NewStage(), Confirm(())))
    evaluator = Evaluator(None, None, Settings(), ManifestSet((), (), ""), claims=claims_for(tmp_path))
    with pytest.raises(AssertionError):
        evaluator._run_stage(_NewStage(), RunContext(1))
    with pytest.raises(AssertionError):  # the run's first pass over the stages (what it will report) too
        evaluator.run((Recover(), _NewStage()), 1)
