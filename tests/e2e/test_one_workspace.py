"""One workspace, one journal, one lock, from any folder; claims across workspaces (issue 32).

Every CLI here runs as a real process in a folder of its own choosing, with state found from the
manifests exactly as in real use (no RECONCILER_WORKSPACE), against the sandbox over loopback.
"""

from __future__ import annotations

import json
import shutil

import pytest

from reconciler.sandbox.faults import parse_faults
from reconciler.state.journal import TicketEvent
from reconciler.state.sqlite import SqliteJournal
from reconciler.state.workspace import workspace_for

from ..helpers.invariants import assert_never_in_two_open_batches
from ..helpers.processes import ROOT, apply_reported, reconciler, sandbox_env, start
from ..helpers.sandbox import orion_batches, quiet, wait_for
from ..helpers.state import journal_holds, state_journal
from ..helpers.trees import repository

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_applies_of_one_tree_from_any_folder_share_one_lock_and_one_journal(slow, tmp_path):
    """apply from the repository root; meanwhile, from another folder, apply by an absolute path, through a
    symlink and by a relative path: each waits, then refuses naming the holder. lock status, journal, plan
    and drift from that folder see the holder and the batch in flight. One batch POST in all."""
    repo = repository(tmp_path / "repo")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "link"
    link.symlink_to(repo, target_is_directory=True)
    env = sandbox_env(slow, RECONCILER_POLL_TIMEOUT="120")
    slow.faults.add(parse_faults("stuck@POST:*/process/batch#1"))  # processing until released, however slow CI is
    first = start(env, "apply", "--auto-approve", cwd=repo)
    try:
        wait_for(lambda: journal_holds(state_journal(repo), "submitted") or first.poll() is not None)
        assert first.poll() is None, first.communicate()
        for where in (str(repo / "manifests"), str(link / "manifests"), "../repo/manifests"):
            second = reconciler(env, "apply", where, "--auto-approve", "--lock-timeout", "1s", cwd=elsewhere)
            assert second.returncode == 1, (where, second.stderr[-2000:])
            assert f"pid {first.pid} on" in second.stderr, second.stderr
            assert "(reconciler apply)" in second.stderr, second.stderr
        status = reconciler(env, "lock", "status", "--json", "--path", str(link / "manifests"), cwd=elsewhere)
        (lease,) = json.loads(status.stdout)["leases"]
        assert lease["alive"] and lease["pid"] == first.pid
        released = reconciler(env, "lock", "release", "--path", "../repo/manifests", cwd=elsewhere)
        assert released.returncode == 1 and "never released" in released.stderr
        (entry,) = json.loads(
            reconciler(env, "journal", "--json", "--path", str(repo / "manifests"), cwd=elsewhere).stdout
        )
        assert entry["kind"] == "batch" and entry["state"] == "submitted"
        assert len(entry["addresses"]) == 3
        plan = reconciler(env, "plan", str(link / "manifests"), cwd=elsewhere)
        assert f"an apply of this workspace is running: pid {first.pid}" in plan.stderr
        assert "3 resource(s) have writes in doubt" in plan.stderr
        drift = reconciler(env, "drift", str(repo / "manifests"), cwd=elsewhere)
        assert f"an apply of this workspace is running: pid {first.pid}" in drift.stderr
    finally:
        slow.state.release_stuck()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out[-2000:] + err[-2000:]
    assert len(orion_batches(slow)) == 1
    assert (repo / ".reconciler" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert not (elsewhere / ".reconciler").exists() and not (ROOT / "manifests" / ".reconciler").exists()


def test_state_without_a_repository_lives_beside_the_manifests(sandbox, tmp_path):
    """No .git anywhere above: the manifests' own folder holds the state, found the same from any folder."""
    tree = tmp_path / "plain"
    shutil.copytree(ROOT / "manifests", tree / "manifests")
    env = sandbox_env(sandbox)
    r = reconciler(env, "apply", str(tree / "manifests"), "--auto-approve", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert list((tree / "manifests" / ".reconciler").glob("*/journal.db"))
    listed = reconciler(env, "journal", "--path", "manifests", cwd=tree)
    assert listed.returncode == 0 and "Nothing in doubt in the workspace manifests @" in listed.stdout


def _older_journal(where, sb, repo):
    """A journal as an older release left it: under `where`/.reconciler, one ticket in doubt."""
    key = workspace_for((str(repo / "manifests"),), sb.orion_url, sb.sei_url).key
    j = SqliteJournal(where / ".reconciler" / key / "journal.db")
    j.ticket_event(1, 10000002, "TradeInstruction/10000002", TicketEvent.SENDING)
    j.ticket_event(1, 10000002, "TradeInstruction/10000002", TicketEvent.IN_DOUBT, "ReadTimeout")
    j.close()
    return where / ".reconciler" / key / "journal.db", repo / ".reconciler" / key / "journal.db"


def test_an_older_journal_under_the_current_folder_is_moved_never_forgotten(sandbox, tmp_path):
    """Readers find it where it is; the first apply moves it into the workspace's state folder and
    resolves its ticket in doubt from SEI before anything is sent (it is sent once)."""
    repo = repository(tmp_path / "repo")
    old_cwd = tmp_path / "old"
    old, new = _older_journal(old_cwd, sandbox, repo)
    env = sandbox_env(sandbox)
    listed = reconciler(env, "journal", "--json", "--path", str(repo / "manifests"), cwd=old_cwd)
    assert [e["key"] for e in json.loads(listed.stdout)] == ["10000002"], listed.stderr
    assert f"reading the journal an older reconciler kept at {old}" in listed.stderr
    r = reconciler(env, "apply", str(repo / "manifests"), "--auto-approve", cwd=old_cwd)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"moved the journal an older reconciler kept at {old} to {new}" in r.stderr
    assert new.exists() and not old.exists()
    assert sandbox.state.ticket_posts == {10000002: 1, 10000003: 1, 10000102: 1}
    again = reconciler(env, "journal", "--path", str(repo / "manifests"), cwd=old_cwd)
    assert "older reconciler" not in again.stderr and "Nothing in doubt" in again.stdout


def test_two_journals_for_one_workspace_are_refused_while_the_old_one_holds_doubts(sandbox, tmp_path):
    repo = repository(tmp_path / "repo")
    env = sandbox_env(sandbox)
    new_lock = reconciler(env, "apply", "--auto-approve", "--target", "TradeInstruction/10000003", cwd=repo)
    assert new_lock.returncode == 0, new_lock.stderr[-2000:]  # the new place holds a journal now
    old, new = _older_journal(tmp_path / "old", sandbox, repo)
    before = len(sandbox.state.writes)
    r = reconciler(env, "apply", str(repo / "manifests"), "--auto-approve", cwd=tmp_path / "old")
    assert r.returncode == 1 and "two journals for one workspace" in r.stderr and str(old) in r.stderr
    assert "nothing was sent" in r.stderr and len(sandbox.state.writes) == before
    assert "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_trees_declaring_one_registration_never_put_it_in_two_batches(slow, tmp_path, backend, request):
    """Tree A (repository a) and tree B (repository b, another folder name) both declare registrations
    31547–31550, applied at once against one sandbox: B claims nothing A has in flight, reports those
    items skipped naming A's workspace, host and pid, and exits 3. One batch in all."""
    extra = {"RECONCILER_BACKEND_URL": request.getfixturevalue("pg_fresh")} if backend == "postgresql" else {}
    a = repository(tmp_path / "a")
    b = repository(tmp_path / "b", "desk")
    shutil.rmtree(b / "desk" / "trades")  # B declares the registrations only
    env = sandbox_env(slow, RECONCILER_POLL_TIMEOUT="120", **extra)
    slow.faults.add(parse_faults("stuck@POST:*/process/batch#1"))  # A's batch runs until B has finished
    first = start(env, "apply", "--auto-approve", cwd=a)
    try:
        wait_for(lambda: len(slow.state.batches) == 1 or first.poll() is not None)
        assert first.poll() is None, first.communicate()
        second = reconciler(env, "apply", "desk", "--auto-approve", cwd=b)
    finally:
        slow.state.release_stuck()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out[-2000:] + err[-2000:]
    assert second.returncode == 3, second.stdout[-3000:] + second.stderr[-2000:]
    skipped = [line for line in second.stdout.splitlines() if line.startswith("· skipped  SleeveRegistration/")]
    assert len(skipped) == 3, second.stdout
    for line in skipped:
        assert "is in flight from workspace manifests @" in line and f"pid {first.pid}" in line, line
    assert len(orion_batches(slow)) == 1
    assert_never_in_two_open_batches(slow)
    rerun = reconciler(env, "apply", "desk", "--auto-approve", cwd=b)  # A's batch ended: nothing left to do
    assert rerun.returncode == 0 and "No changes to apply." in rerun.stderr, rerun.stdout + rerun.stderr


def test_a_damaged_journal_names_its_file_and_nothing_is_sent(sandbox, tmp_path):
    repo = repository(tmp_path / "repo")
    env = sandbox_env(sandbox)
    key = workspace_for((str(repo / "manifests"),), sandbox.orion_url, sandbox.sei_url).key
    damaged = repo / ".reconciler" / key / "journal.db"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not a database at all\n" * 200)
    r = reconciler(env, "apply", "--auto-approve", cwd=repo)
    assert r.returncode == 1, r.stderr
    assert f"the journal {damaged} cannot be read" in r.stderr and "nothing was sent" in r.stderr
    assert "move the file aside" in r.stderr and "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert sandbox.state.writes == []
    listed = reconciler(env, "journal", cwd=repo)
    assert listed.returncode == 1 and f"What can still be read from {damaged}:" in listed.stdout
    assert "unreadable" in listed.stdout and str(damaged) in listed.stderr
    plan = reconciler(env, "plan", cwd=repo)
    assert plan.returncode == 1 and str(damaged) in plan.stderr and "Traceback" not in plan.stderr


def test_a_targeted_apply_never_claims_the_whole_estate_converged(sandbox, tmp_path):
    env = sandbox_env(sandbox, workspace=tmp_path / "ws")
    r = reconciler(env, "apply", "--auto-approve", "--target", "TradeInstruction/*")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    last = r.stdout.strip().splitlines()[-1]
    assert (
        "converged for the 5 selected resources; 4 others left out by --target/--exclude/--selector were "
        "not checked and may still differ" in last
    ), last
    assert "live state matches the manifests" not in last
    whole = reconciler(env, "apply", "--auto-approve")
    assert whole.stdout.strip().splitlines()[-1].endswith("converged: live state matches the manifests.")


@pytest.mark.slow
def test_short_client_time_outs_never_shrink_the_settle_window(sandbox, tmp_path):
    """timeouts {read: 2, write: 2} in reconciler.yaml and no settleWindow: a ticket POST that SEI holds
    5 s, then commits, is read back inside the environment's floor (30 s for endpoints by URL) and
    POSTed once (4 s, the sum of the time-outs, would have re-sent it)."""
    repo = repository(tmp_path / "repo")
    (repo / "reconciler.yaml").write_text("timeouts: {read: 2, write: 2}\n")
    env = sandbox_env(sandbox)
    del env["RECONCILER_SETTLE_WINDOW"], env["RECONCILER_READ_TIMEOUT"]
    sandbox.faults.add(parse_faults("late=5@POST:/v1/order/tradetickets#1"))
    r, items = apply_reported(env, tmp_path / "report.json", cwd=repo)
    quiet(sandbox)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "the answer was lost, but the read-back shows SEI has it" in [i["message"] for i in items.values()]
    assert sandbox.state.ticket_posts == {10000002: 1, 10000003: 1, 10000102: 1}


@pytest.mark.slow
def test_a_commit_later_than_the_settle_window_is_the_documented_boundary(sandbox, tmp_path):
    """The boundary README states: settle window 3 s, SEI holds a ticket POST 6 s. Every read-back over
    the window shows it absent, so it is sent once more; the second POST is stored, and the first, landing
    late, meets SEI's 409. Two POSTs of one ticket, one ticket stored: only an idempotency key (which
    neither vendor offers) would close this, so the settle window's floor is tens of seconds."""
    sandbox.faults.add(parse_faults("late=6@POST:/v1/order/tradetickets#1"))
    env = sandbox_env(sandbox, workspace=tmp_path / "ws")
    r = reconciler(env, "apply", "--auto-approve")
    quiet(sandbox)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    posts = sandbox.state.ticket_posts
    assert sorted(posts.values()) == [1, 1, 2], posts
    assert all(sandbox.state.ticket_count(t) == 1 for t in posts)
