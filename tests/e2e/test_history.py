"""The audit trail end to end (issue 31): the real CLI against the sandbox over loopback, state found
from the manifests' repository as in real use."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest

from ..helpers.processes import reconciler, sandbox_env
from ..helpers.sandbox import edit_outside_git
from ..helpers.trees import repository

pytestmark = pytest.mark.integration

_CHANGE_FIELDS = {
    "kind", "time", "address", "hash", "previous", "seq", "run", "action", "outcome", "operator", "commit",
    "pull_request", "approvers", "plan_digest", "fields", "policy", "vendor", "message", "emergency",
}  # fmt: skip


def _records(env, repo, *args: str) -> list[dict]:
    r = reconciler(env, "history", "--format", "json", *args, cwd=repo)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _history_db(repo):
    (db,) = (repo / ".reconciler").glob("*/history.db")
    return db


def test_an_apply_leaves_one_chained_change_record_per_item(sandbox, tmp_path):
    repo = repository(tmp_path / "repo")
    env = sandbox_env(sandbox, GITHUB_ACTOR="ops-alice", GITHUB_RUN_ID="77", GITHUB_REPOSITORY="firm/estate")
    applied = reconciler(env, "apply", "--auto-approve", "--report", str(tmp_path / "r.json"), cwd=repo)
    assert applied.returncode == 0, applied.stderr
    items = json.loads((tmp_path / "r.json").read_text())["items"]
    records = _records(env, repo)
    assert [r["address"] for r in records] == [i["address"] for i in items]
    previous = "0" * 64
    for r in records:
        assert _CHANGE_FIELDS <= set(r), sorted(_CHANGE_FIELDS - set(r))
        assert r["previous"] == previous
        previous = r["hash"]
        assert r["kind"] == "change" and r["outcome"] == "applied" and r["run"] == 1
        assert r["time"].endswith("Z") and r["operator"]["name"] == "ops-alice"
        assert r["operator"]["ci_run_url"].endswith("/firm/estate/actions/runs/77")
    by_address = {r["address"]: r for r in records}
    okafor = by_address["SleeveRegistration/okafor-trust"]
    assert {"path": "accountSleeves[Normal sleeve, model 36].targetAllocation", "before": 60, "after": 55} in okafor[
        "fields"
    ]
    assert isinstance(okafor["vendor"]["batch_id"], int) and okafor["vendor"]["correlation_id"]
    ticket = by_address["TradeInstruction/10000002"]
    assert ticket["action"] == "create" and ticket["vendor"] == {"ticket_id": 10000002}
    assert {f["path"] for f in ticket["fields"]} >= {"side", "tradeTicketId", "affectsModel"}

    table = list(csv.reader(io.StringIO(reconciler(env, "history", "--format", "csv", cwd=repo).stdout)))
    assert table[0][:4] == ["seq", "time", "kind", "address"] and len(table) == 1 + len(records)
    tickets = _records(env, repo, "--address", "TradeInstruction/*")
    assert tickets and all(r["address"].startswith("TradeInstruction/") for r in tickets)
    assert len(tickets) == sum(1 for r in records if r["address"].startswith("TradeInstruction/"))

    shown = reconciler(env, "history", "show", "1", cwd=repo)
    assert shown.returncode == 0 and "ops-alice" in shown.stdout and "60 → 55" in shown.stdout


def test_verify_names_the_record_edited_in_place_removed_or_reordered(sandbox, tmp_path):
    repo = repository(tmp_path / "repo")
    env = sandbox_env(sandbox)
    assert reconciler(env, "apply", "--auto-approve", cwd=repo).returncode == 0
    ok = reconciler(env, "history", "verify", cwd=repo)
    assert ok.returncode == 0 and "History intact: 6 record(s)" in ok.stdout, ok.stdout + ok.stderr
    db = sqlite3.connect(_history_db(repo))
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE history SET record = record WHERE seq = 3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM history WHERE seq = 3")
    # someone with file access drops the guard and edits the outcome of record 3
    db.execute("DROP TRIGGER history_no_update")
    db.execute(
        'UPDATE history SET record = replace(record, \'"outcome":"applied"\', \'"outcome":"failed"\') WHERE seq=3'
    )
    db.commit()
    broken = reconciler(env, "history", "verify", cwd=repo)
    assert broken.returncode == 1
    assert "record #3 (" in broken.stderr and "was altered" in broken.stderr, broken.stderr
    assert "Traceback" not in broken.stderr
    # put it back, then remove record 4: record 5 no longer follows the record before it
    db.execute(
        'UPDATE history SET record = replace(record, \'"outcome":"failed"\', \'"outcome":"applied"\') WHERE seq=3'
    )
    db.execute("DROP TRIGGER history_no_delete")
    db.execute("DELETE FROM history WHERE seq = 4")
    db.commit()
    removed = reconciler(env, "history", "verify", cwd=repo)
    assert removed.returncode == 1 and "record #5 (" in removed.stderr and "removed or reordered" in removed.stderr


def test_drift_seen_then_reverted_by_apply_is_one_story_in_time_order(sandbox, tmp_path):
    repo = repository(tmp_path / "repo")
    env = sandbox_env(sandbox)
    assert reconciler(env, "apply", "--auto-approve", cwd=repo).returncode == 0
    edit_outside_git(sandbox, 31549, "jdoe", set={"isDoNotTrade": False})
    drift = reconciler(env, "drift", cwd=repo)
    assert drift.returncode == 2 and "1 finding(s) first seen" in drift.stderr, drift.stderr
    again = reconciler(env, "drift", cwd=repo)  # still there: nothing new is recorded, its last_seen moves
    assert again.returncode == 2 and "History:" not in again.stderr
    revert = reconciler(env, "apply", "--auto-approve", cwd=repo)
    assert revert.returncode == 0, revert.stderr
    clean = reconciler(env, "drift", cwd=repo)
    assert clean.returncode == 0 and "1 ended" in clean.stderr, clean.stderr
    story = _records(env, repo, "--address", "SleeveRegistration/chen-ira")
    assert [(r["kind"], r.get("event"), r.get("run")) for r in story] == [
        ("change", None, 1),
        ("drift", "seen", None),
        ("change", None, 2),
        ("drift", "ended", None),
    ]
    assert [r["time"] for r in story] == sorted(r["time"] for r in story)
    seen, ended = story[1], story[3]
    assert seen["edited_by"] == "jdoe" and seen["edited_at"].endswith("Z")
    assert {"path": "isDoNotTrade", "live": False, "declared": True} in seen["fields"]
    assert ended["ended_by"] == "reverted" and "reverted by apply run 2" in ended["how"]
    assert ended["first_seen"] == seen["time"] and ended["last_seen"] >= seen["time"]
    assert _records(env, repo, "--kind", "drift", "--address", "SleeveRegistration/chen-ira") == [seen, ended]
    assert reconciler(env, "history", "verify", cwd=repo).returncode == 0


def test_a_pull_requests_drift_audit_writes_no_history(sandbox, tmp_path):
    repo = repository(tmp_path / "repo")
    env = sandbox_env(sandbox, RECONCILER_PULL_REQUEST="12")
    edit_outside_git(sandbox, 31549, "jdoe", set={"isDoNotTrade": False})
    r = reconciler(env, "drift", cwd=repo)
    assert r.returncode == 2 and "a pull request's audit only reads" in r.stderr
    assert not list((repo / ".reconciler").glob("*/history.db"))


def test_history_export_writes_the_pack_with_the_chain_verdict(sandbox, tmp_path):
    repo = repository(tmp_path / "repo")
    env = sandbox_env(sandbox)
    assert reconciler(env, "apply", "--auto-approve", cwd=repo).returncode == 0
    out = tmp_path / "pack"
    r = reconciler(
        env, "history", "export", "--since", "2000-01-01", "--until", "2999-12-31", "--output", str(out), cwd=repo
    )
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["chain.json", "index.html", "records.csv", "records.json"]
    chain = json.loads((out / "chain.json").read_text())
    records = json.loads((out / "records.json").read_text())
    assert chain["intact"] and chain["records"] == len(records) == 6 and chain["head"] == records[-1]["hash"]
    page = (out / "index.html").read_text()
    assert 'id="verify"' in page and "Intact: 6 record(s)" in page and chain["head"] in page
    assert "<script" not in page and "http://" not in page and "https://" not in page  # self-contained


def test_a_run_under_a_soft_override_is_an_emergency_change_with_its_reason(sandbox, tmp_path):
    repo = repository(tmp_path / "repo")
    (repo / "manifests" / "policy.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Policy\nmetadata: {name: desk-limits}\n"
        "spec:\n  enforcement: soft\n  limits:\n    maxTicketNotional: 1\n"
    )
    env = sandbox_env(sandbox)
    r = reconciler(
        env, "apply", "--auto-approve", "--override-policy", "desk-limits", "--reason", "INC-4411 client deadline",
        cwd=repo,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    emergencies = _records(env, repo, "--emergency")
    assert emergencies and len(emergencies) == len(_records(env, repo))
    (override,) = emergencies[0]["policy"]["overrides"]
    assert override["policy"] == "desk-limits" and override["reason"] == "INC-4411 client deadline"
    assert "EMERGENCY" in reconciler(env, "history", cwd=repo).stdout
