"""drift --adopt as a library: live values become minimal text edits of the manifests, nothing else changes."""

from __future__ import annotations

import copy

from reconciler.audit.adopt import plan_adoption, write_adoption
from reconciler.audit.importer import registration_manifest
from reconciler.manifests import load_manifests
from reconciler.sandbox.demo import demo_state
from reconciler.vendors.reads import LiveState

from ..helpers.trees import example_tree


def live_state(**edits) -> LiveState:
    regs = {int(r["registrationId"]): copy.deepcopy(r) for r in demo_state()["registrations"]}
    for rid, fields in edits.items():
        regs[int(rid.removeprefix("r"))].update(fields)
    return LiveState(regs, {})


def test_a_drifted_registration_level_field_is_adopted_as_one_changed_line(tmp_path):
    tree = example_tree(tmp_path / "m")
    manifests = load_manifests([str(tree)])
    chen = tree / "registrations" / "east" / "chen-ira.yaml"
    before = chen.read_text()
    adoption = plan_adoption(
        manifests,
        live_state(r31549={"isDoNotTrade": False}),
        (),
        (str(tree),),
        wanted=lambda address, labels: address == "SleeveRegistration/chen-ira",
    )
    assert [line.split(":")[0] for line in adoption.adopted] == ["SleeveRegistration/chen-ira"]
    (written,) = write_adoption(adoption)
    assert written.endswith("chen-ira.yaml")
    after = chen.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert changed == [("  isDoNotTrade: true", "  isDoNotTrade: false")], changed


def test_an_imported_registration_leaves_out_server_owned_fields_and_quotes_identifiers():
    reg = next(r for r in demo_state()["registrations"] if r["registrationId"] == 31547)
    doc = registration_manifest(reg)
    assert doc["kind"] == "SleeveRegistration" and doc["spec"]["registrationId"] == 31547
    sleeves = doc["spec"]["accountSleeves"]
    assert all("currentValue" not in s and "sleeveDescription" not in s for s in sleeves)
    assert {s["sleeveType"] for s in sleeves} <= {"Normal sleeve", "Unmanaged sleeve"}  # the others: left alone
