"""Settings: durations as people type them, the settle window's floor, and where state is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import Settings, load_settings
from reconciler.config.durations import parse_duration
from reconciler.errors import ConfigError
from reconciler.fields import SETTLE_FLOOR_SECONDS
from reconciler.state.workspace import workspace_for, workspace_root

from .conftest import run_cli


@pytest.mark.parametrize("text,seconds", [("3", 3.0), (3, 3.0), ("2.5", 2.5), ("3s", 3.0), ("500ms", 0.5),
                                          ("5m", 300.0), ("1h", 3600.0), ("1m30s", 90.0), (" 10S ", 10.0)])
def test_durations_read_as_terraform_users_write_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "3x", "s", "-3", "nan", "inf", "3s5", True, "1h-5m"])
def test_a_duration_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_work_in_the_environment_and_in_reconciler_yaml(tmp_path):
    (tmp_path / "reconciler.yaml").write_text("pollTimeout: 30m\ntimeouts: {read: 90s, write: 1m}\n")
    s = load_settings([str(tmp_path)], env={"RECONCILER_SETTLE_WINDOW": "5m"})
    assert (s.poll_timeout, s.read_timeout, s.write_timeout, s.settle) == (1800.0, 90.0, 60.0, 300.0)
    with pytest.raises(ConfigError, match=r"RECONCILER_POLL_TIMEOUT: '3 fortnights' is not a duration"):
        load_settings([str(tmp_path)], env={"RECONCILER_POLL_TIMEOUT": "3 fortnights"})


def test_lock_timeout_takes_a_duration_on_the_command_line():
    r = run_cli("apply", "--lock-timeout", "soon", "--auto-approve")
    assert r.code == 1 and "'soon' is not a duration" in r.err


def test_the_settle_window_has_a_floor_that_short_time_outs_cannot_lower():
    """How long a vendor may hold a request is the vendor's: 2 s time-outs leave the floor in place."""
    fast = Settings(read_timeout=2, write_timeout=2)
    assert fast.settle == SETTLE_FLOOR_SECONDS[None] == 30.0
    assert Settings(read_timeout=2, write_timeout=2, environment="production").settle == 120.0
    assert Settings(read_timeout=60, write_timeout=90).settle == 150.0          # long time-outs go above it
    assert Settings(read_timeout=2, write_timeout=2, settle_window=3).settle == 3.0   # an explicit choice stands


def test_state_is_found_from_the_manifests_never_the_current_folder(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "desk" / "manifests").mkdir(parents=True)
    (tmp_path / "link").symlink_to(repo)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    seen = set()
    for cwd, path in ((repo, "desk/manifests"), (elsewhere, str(repo / "desk" / "manifests")),
                      (elsewhere, "../link/desk/manifests"), (repo / "desk", "manifests")):
        monkeypatch.chdir(cwd)
        ws = workspace_for((path,), "https://o.example/api", "https://s.example", None)
        seen.add((ws.key, ws.directory))
        assert workspace_root((path,)) == repo
    (key, directory), = seen
    assert directory == repo / ".reconciler" / key
    monkeypatch.chdir(elsewhere)
    relative = workspace_for((str(repo / "desk" / "manifests"),), "https://o.example/api", "https://s.example",
                             Path("state"))
    assert relative.directory == repo / "state" / key        # a relative RECONCILER_WORKSPACE: from the root
    other = workspace_for((str(repo / "desk" / "manifests"),), "https://o.example/api", "https://test.example", None)
    assert other.key != key                                   # another endpoint: another workspace
