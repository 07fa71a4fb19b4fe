"""The hash-chained history (state/history.py) on SQLite and on a real PostgreSQL server (issue 31)."""

from __future__ import annotations

import hashlib
import json

import psycopg
import pytest

from reconciler.config import Secret
from reconciler.state.history import GENESIS, HistoryFilter, SqliteHistory, canonical
from reconciler.state.postgres import PostgresHistory

from ..helpers.processes import ROOT, reconciler, sandbox_env
from ..helpers.trees import repository


def _record(i: int, address: str = "SleeveRegistration/a", kind: str = "change") -> dict:
    return {
        "kind": kind,
        "time": f"2026-12-0{1 + i % 5}T10:00:0{i % 10}Z",
        "address": address,
        "run": i,
        "emergency": i == 2,
    }


def _chain(history, n: int = 5) -> list[dict]:
    return history.append([_record(i, f"SleeveRegistration/r{i}") for i in range(n)])


def test_each_record_hashes_its_canonical_json_which_holds_the_previous_hash(tmp_path):
    history = SqliteHistory(tmp_path / "history.db")
    first, second = _chain(history, 2)
    assert first["previous"] == GENESIS and second["previous"] == first["hash"]
    # an auditor can recompute it with any JSON library: keys sorted, no spaces, UTF-8, `hash` left out
    body = {k: v for k, v in second.items() if k != "hash"}
    expected = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert second["hash"] == expected == hashlib.sha256(canonical(second)).hexdigest()
    # a second append continues the chain
    (third,) = history.append([_record(9)])
    assert third["seq"] == 3 and third["previous"] == second["hash"]
    assert history.verify().intact and history.verify().head == third["hash"]


def test_filters_select_by_time_address_kind_and_emergency(tmp_path):
    history = SqliteHistory(tmp_path / "history.db")
    _chain(history, 5)
    history.append([_record(7, "TradeInstruction/1", kind="drift")])
    assert [r["seq"] for r in history.records(HistoryFilter(address="TradeInstruction/*"))] == [6]
    assert [r["seq"] for r in history.records(HistoryFilter(kind="drift"))] == [6]
    assert [r["seq"] for r in history.records(HistoryFilter(emergency=True))] == [3]
    assert [r["seq"] for r in history.records(HistoryFilter(since="2026-12-03", until="2026-12-04"))] == [3, 6]


@pytest.mark.parametrize(
    "tamper, named, why",
    [
        ("UPDATE history SET record = replace(record, '\"run\":1', '\"run\":7') WHERE seq = 2", "#2", "altered"),
        ("UPDATE history SET address = 'SleeveRegistration/x' WHERE seq = 4", "#4", "columns"),
        ("DELETE FROM history WHERE seq = 3", "#4", "removed or reordered"),
        (
            "UPDATE history SET seq = 100 WHERE seq = 2; UPDATE history SET seq = 2 WHERE seq = 3; "
            "UPDATE history SET seq = 3 WHERE seq = 100",
            "#2",
            "removed or reordered",
        ),
    ],
    ids=["record-edited", "index-column-edited", "record-removed", "records-swapped"],
)
def test_verify_names_the_first_record_altered_removed_or_reordered(tmp_path, tamper, named, why):
    import sqlite3

    history = SqliteHistory(tmp_path / "history.db")
    _chain(history, 5)
    history.close()
    db = sqlite3.connect(tmp_path / "history.db")
    db.execute("DROP TRIGGER history_no_update")  # what someone with the file can do
    db.execute("DROP TRIGGER history_no_delete")
    db.executescript(tamper)
    db.commit()
    chain = SqliteHistory(tmp_path / "history.db").verify()
    assert not chain.intact
    assert chain.broken is not None and f"record {named} (" in chain.broken and why in chain.broken, chain.broken


def test_postgres_refuses_update_and_delete_and_verify_catches_a_superusers_edit(pg_fresh):
    history = PostgresHistory(Secret(pg_fresh), "ws-1")
    other = PostgresHistory(Secret(pg_fresh), "ws-2")
    try:
        _chain(history, 4)
        _chain(other, 2)  # one table, one chain per workspace
        assert history.verify().intact and history.verify().records == 4 and other.verify().records == 2
        with psycopg.connect(pg_fresh, autocommit=True) as conn:
            for sql in (
                "UPDATE reconciler.history SET run = 9",
                "DELETE FROM reconciler.history",
                "TRUNCATE reconciler.history",
            ):
                with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                    conn.execute(sql)
            # a superuser can switch the trigger off: the chain shows it
            conn.execute("ALTER TABLE reconciler.history DISABLE TRIGGER history_append_only")
            conn.execute(
                "UPDATE reconciler.history SET record = replace(record, '\"run\":2', '\"run\":5') "
                "WHERE workspace = 'ws-1' AND seq = 3"
            )
        chain = history.verify()
        assert not chain.intact and chain.broken is not None and "record #3 (" in chain.broken
        assert other.verify().intact
    finally:
        history.close()
        other.close()


def _readme_roles_sql() -> str:
    """The role SQL the README's "Audit trail" section gives operators, as written there."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```sql", text.index("## Audit trail")) + len("```sql")
    return text[start : text.index("```", start)]


def test_the_readme_roles_apply_and_read_but_never_change_history(sandbox, pg_fresh, tmp_path):
    """The roles exactly as the README creates them: the tool's role runs a whole apply (journal, lock,
    claims, history) and cannot UPDATE or DELETE history; the reader's role reads history."""
    repo = repository(tmp_path / "repo")
    PostgresHistory(Secret(pg_fresh), "owner").close()  # the owner creates the schema once
    with psycopg.connect(pg_fresh, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS reconciler_tool")
        conn.execute("DROP ROLE IF EXISTS reconciler_reader")
        conn.execute(_readme_roles_sql().replace("'…'", "'pw-1'"))
    host = pg_fresh.split("@", 1)[1]
    tool, reader = f"postgresql://reconciler_tool:pw-1@{host}", f"postgresql://reconciler_reader:pw-1@{host}"
    env = sandbox_env(sandbox, RECONCILER_BACKEND_URL=tool)
    applied = reconciler(env, "apply", "--auto-approve", cwd=repo)
    assert applied.returncode == 0, applied.stderr
    read = reconciler({**env, "RECONCILER_BACKEND_URL": reader}, "history", "verify", cwd=repo)
    assert read.returncode == 0 and "History intact: 6 record(s)" in read.stdout, read.stdout + read.stderr
    with psycopg.connect(tool, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE reconciler.history SET run = 9")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM reconciler.history")
