"""Where a workspace's state lives: found from the manifests (their repository), never the current folder."""

from __future__ import annotations

from pathlib import Path

from reconciler.state.workspace import workspace_for, workspace_root


def test_state_is_found_from_the_manifests_never_the_current_folder(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "desk" / "manifests").mkdir(parents=True)
    (tmp_path / "link").symlink_to(repo)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    seen = set()
    for cwd, path in (
        (repo, "desk/manifests"),
        (elsewhere, str(repo / "desk" / "manifests")),
        (elsewhere, "../link/desk/manifests"),
        (repo / "desk", "manifests"),
    ):
        monkeypatch.chdir(cwd)
        ws = workspace_for((path,), "https://o.example/api", "https://s.example", None)
        seen.add((ws.key, ws.directory))
        assert workspace_root((path,)) == repo
    ((key, directory),) = seen
    assert directory == repo / ".reconciler" / key
    monkeypatch.chdir(elsewhere)
    relative = workspace_for(
        (str(repo / "desk" / "manifests"),), "https://o.example/api", "https://s.example", Path("state")
    )
    assert relative.directory == repo / "state" / key  # a relative RECONCILER_WORKSPACE: from the root
    other = workspace_for((str(repo / "desk" / "manifests"),), "https://o.example/api", "https://test.example", None)
    assert other.key != key  # another endpoint: another workspace
