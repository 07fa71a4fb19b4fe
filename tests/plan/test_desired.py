"""The declarations apply needs later, on disk (plan/desired.py)."""

from __future__ import annotations

import os
import stat

from reconciler.plan.desired import DesiredIndex, DesiredStore

from .test_builder import manifests, reg_doc


def test_the_store_gives_back_what_it_was_given_and_leaves_nothing_behind(tmp_path):
    (tmp_path / "m").mkdir()
    declared = manifests(tmp_path / "m", *(reg_doc(name=f"r{i}", rid=100 + i) for i in range(30)))
    (tmp_path / "scratch").mkdir()
    store = DesiredStore(tmp_path / "scratch")
    store.FLUSH = 7  # several transactions, and some rows still pending at the first read
    for r in declared.registrations:
        store.put(r)
    (folder,) = (tmp_path / "scratch").iterdir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "desired.db").stat().st_mode) == 0o600  # it names accounts
    wanted = ["SleeveRegistration/r3", "SleeveRegistration/r29", "SleeveRegistration/nope"]
    found = store.get_many(wanted)
    assert sorted(found) == ["SleeveRegistration/r29", "SleeveRegistration/r3"]
    by = {r.address: r for r in declared.registrations}
    assert found["SleeveRegistration/r3"] == by["SleeveRegistration/r3"]
    assert store.get("SleeveRegistration/r0") == by["SleeveRegistration/r0"] and store.count == 30
    assert store.get_many(f"SleeveRegistration/r{i}" for i in range(30)).keys() == {
        r.address for r in declared.registrations
    }  # more than one query's worth of parameters is fine too
    store.close()
    assert os.listdir(tmp_path / "scratch") == []


def test_the_in_memory_index_answers_the_same_questions(tmp_path):
    declared = manifests(tmp_path, reg_doc(name="a", rid=1))
    index = DesiredIndex.of(declared)
    assert index.get("SleeveRegistration/a") == declared.registrations[0]
    assert index.get_many(["SleeveRegistration/a", "x"]) == {"SleeveRegistration/a": declared.registrations[0]}
