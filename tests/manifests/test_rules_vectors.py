"""The client and the emulator judge the vendor rules alike, from shared test vectors (data), and
the emulator stays independent: a rule broken on the client side is still caught by the sandbox."""

from __future__ import annotations

import json
import time

import pytest

from reconciler.config import Settings
from reconciler.errors import ManifestError
from reconciler.manifests import load_manifests, rules
from reconciler.plan.builder import build_plan
from reconciler.sandbox import contract
from reconciler.vendors.reads import read_live_state

from ..helpers.processes import ROOT

VECTORS = ROOT / "tests" / "vectors"
CUSIPS = json.loads((VECTORS / "cusip.json").read_text())["vectors"]
REGISTRATIONS = json.loads((VECTORS / "registration_rules.json").read_text())["vectors"]


def _client_cusip_ok(cusip: str) -> bool:
    return len(cusip) == 9 and str(rules.cusip_check_digit(cusip[:8])) == cusip[8:]


@pytest.mark.parametrize("v", CUSIPS, ids=lambda v: v["why"])
def test_client_and_sandbox_judge_each_cusip_as_the_vectors_say(v):
    assert _client_cusip_ok(v["cusip"]) is v["valid"]
    assert contract.cusip_is_valid(v["cusip"]) is v["valid"]


@pytest.mark.parametrize("v", REGISTRATIONS, ids=lambda v: v["name"])
def test_client_and_sandbox_judge_each_registration_as_the_vectors_say(v):
    reg = v["registration"]
    client = list(rules.iter_registration_problems(reg, reg["accountSleeves"], complete=True))
    sandbox = contract.registration_problems(reg)
    assert (not client) is v["valid"], client
    assert (not sandbox) is v["valid"], sandbox


def test_the_vectors_cover_both_verdicts():
    for vectors in (CUSIPS, REGISTRATIONS):
        assert {v["valid"] for v in vectors} == {True, False}


SUMS_TO_110 = """\
apiVersion: reconciler/v1
kind: SleeveRegistration
metadata: {name: sd-regname1}
spec:
  registrationId: 31547
  accountSleeves:
    - {sleeveType: Normal sleeve, modelAggId: 36, targetAllocation: 30}
    - {sleeveType: Normal sleeve, modelAggId: 34, targetAllocation: 30}
    - {sleeveType: Normal sleeve, modelAggId: 30, targetAllocation: 50}
"""


def test_a_rule_broken_on_the_client_is_caught_by_the_sandbox(tmp_path, monkeypatch, vendors):
    (tmp_path / "r.yaml").write_text(SUMS_TO_110)
    with pytest.raises(ManifestError) as refused:
        load_manifests([str(tmp_path)])  # the client's own rule, intact
    assert any("to 110, not 100" in d.message for d in refused.value.diagnostics)

    def broken(*args, **kwargs):  # a bug in the client's rules: nothing is ever wrong
        return iter(())

    monkeypatch.setattr("reconciler.manifests.resolve.iter_registration_problems", broken)
    monkeypatch.setattr("reconciler.plan.builder.iter_registration_problems", broken)
    manifests = load_manifests([str(tmp_path)], workers=1)
    plan = build_plan(manifests, read_live_state(vendors, manifests.registrations, (), Settings()))
    (batch,) = [s for s in plan.submissions if s.api == "orion"]

    before = vendors.orion.get_registration(31547)
    batch_id = vendors.orion.submit_batch(list(batch.body))
    deadline = time.monotonic() + 10
    while not (status := vendors.orion.batch_status(batch_id)).is_done:
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status.status == "Failed"
    errors = vendors.orion.batch_errors(batch_id)
    assert any("targetAllocation" in e.message and "110" in e.message for e in errors), errors
    assert vendors.orion.get_registration(31547)["accountSleeves"] == before["accountSleeves"]  # nothing stored
