"""The local backend: a journal an older release kept under the current folder is moved, read in place, or
refused while it holds writes in doubt; the state folder keeps itself out of Git."""

from __future__ import annotations

import pytest

from reconciler.config import Settings
from reconciler.errors import StateBackendError
from reconciler.state.backend import open_backend
from reconciler.state.journal import TicketEvent
from reconciler.state.sqlite import SqliteJournal
from reconciler.state.workspace import workspace_for

ORION, SEI = "https://orion.example/api", "https://sei.example"


def _workspace(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "manifests").mkdir()
    old = tmp_path / "old"
    old.mkdir()
    monkeypatch.chdir(old)  # an older release kept state here, under the current folder
    ws = workspace_for((str(repo / "manifests"),), ORION, SEI)
    assert ws.legacy_directory == old / ".reconciler" / ws.key
    return ws


def _in_doubt(path):
    j = SqliteJournal(path)
    j.ticket_event(1, 7, "TradeInstruction/7", TicketEvent.SENDING)
    j.close()


def test_readers_use_the_old_journal_in_place_and_the_first_writer_moves_it(tmp_path, monkeypatch):
    ws = _workspace(tmp_path, monkeypatch)
    _in_doubt(ws.legacy_directory / "journal.db")
    backend = open_backend(Settings(), ws)
    reader = backend.read_journal()
    assert [d.key for d in reader.in_doubt()] == ["7"] and "reading the journal an older reconciler" in backend.notices[
        0
    ]
    reader.close()
    writer = open_backend(Settings(), ws)
    journal = writer.journal()
    assert [d.key for d in journal.in_doubt()] == ["7"] and "moved the journal" in writer.notices[0]
    journal.close()
    assert ws.journal_path.exists() and not (ws.legacy_directory / "journal.db").exists()
    assert (ws.directory.parent / ".gitignore").read_text().splitlines()[-1] == "*"


def test_two_journals_are_refused_while_the_old_one_holds_writes_in_doubt(tmp_path, monkeypatch):
    ws = _workspace(tmp_path, monkeypatch)
    SqliteJournal(ws.journal_path).close()
    _in_doubt(ws.legacy_directory / "journal.db")
    with pytest.raises(StateBackendError, match="two journals for one workspace"):
        open_backend(Settings(), ws).journal()


def test_an_old_journal_with_nothing_in_doubt_is_named_and_left_alone(tmp_path, monkeypatch):
    ws = _workspace(tmp_path, monkeypatch)
    SqliteJournal(ws.journal_path).close()
    SqliteJournal(ws.legacy_directory / "journal.db").close()
    backend = open_backend(Settings(), ws)
    backend.journal().close()
    assert "holds nothing in doubt and is no longer used" in backend.notices[0]
