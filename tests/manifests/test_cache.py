"""The cache of checked manifests (manifests/cache.py, issue 30): a warm stream parses only what changed,
and the cache is never trusted across versions or schema changes, nor when an entry is damaged."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

import reconciler.manifests as manifests_module
from reconciler.manifests import ManifestStream
from reconciler.manifests import cache as cache_module

from ..helpers.processes import ROOT, reconciler, sandbox_env
from ..helpers.trees import repository


@pytest.fixture
def parsed(monkeypatch):
    """The files parsed in this process, by display name (the tree is small: no worker processes)."""
    seen: list[str] = []
    real = manifests_module.load_documents

    def counting(data, display, **kw):
        seen.append(display)
        return real(data, display, **kw)

    monkeypatch.setattr(manifests_module, "load_documents", counting)
    return seen


def _load(tree, cache):
    stream = ManifestStream((str(tree),), cache=str(cache))
    resources_ = list(stream)
    return [(r.address if hasattr(r, "address") else r.batch_id, r) for r in resources_], stream.digest


def test_a_warm_stream_parses_only_what_changed_and_gives_the_same_result(tmp_path, parsed):
    tree, cache = tmp_path / "manifests", tmp_path / "cache"
    shutil.copytree(ROOT / "manifests", tree)
    cold, cold_digest = _load(tree, cache)
    assert len(parsed) == 7
    parsed.clear()
    warm, warm_digest = _load(tree, cache)
    assert parsed == [] and warm == cold and warm_digest == cold_digest
    reg = tree / "registrations" / "east" / "chen-ira.yaml"
    reg.write_text(reg.read_text().replace("isDoNotTrade: true", "isDoNotTrade: false"))
    changed, _ = _load(tree, cache)
    assert [p.rsplit("/", 1)[-1] for p in parsed] == ["chen-ira.yaml"]
    assert dict(changed)["SleeveRegistration/chen-ira"].fields.get("isDoNotTrade") is False


def test_errors_come_from_the_cache_exactly_as_from_a_parse(tmp_path, parsed):
    tree, cache = tmp_path / "manifests", tmp_path / "cache"
    shutil.copytree(ROOT / "manifests", tree)
    (tree / "broken.yaml").write_text("apiVersion: reconciler/v1\nkind: SleeveRegistration\nmetadata: {name: b}\n")
    messages = []
    for _ in range(2):
        with pytest.raises(Exception) as e:
            _load(tree, cache)
        messages.append([str(d) for d in e.value.diagnostics])
    assert messages[0] == messages[1] and any("broken.yaml:" in m for m in messages[0]), messages


def test_a_new_version_or_schema_never_trusts_the_old_entries(tmp_path, parsed, monkeypatch):
    tree, cache = tmp_path / "manifests", tmp_path / "cache"
    shutil.copytree(ROOT / "manifests", tree)
    _load(tree, cache)
    parsed.clear()
    monkeypatch.setattr(cache_module, "__version__", "9.9.9")
    cache_module._salt.cache_clear()
    _load(tree, cache)
    assert len(parsed) == 7  # a new version: every file checked again
    parsed.clear()
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas)
    policy = schemas / "policy.schema.json"
    policy.write_text(policy.read_text().replace("Guardrails on plans", "Guardrails on plans (edited)"))
    monkeypatch.setattr(cache_module.resources, "files", lambda package: schemas)
    cache_module._salt.cache_clear()
    _load(tree, cache)
    assert len(parsed) == 7  # a schema changed: every file checked again
    cache_module._salt.cache_clear()


def test_a_damaged_entry_or_database_is_recomputed(tmp_path, parsed):
    tree, cache = tmp_path / "manifests", tmp_path / "cache"
    shutil.copytree(ROOT / "manifests", tree)
    cold, _ = _load(tree, cache)
    (db_path,) = cache.glob("checked-*.db")
    db = sqlite3.connect(db_path)
    key = db.execute("SELECT key FROM checked LIMIT 1").fetchone()[0]
    db.execute("UPDATE checked SET blob = ? WHERE key = ?", (b"not a pickle", key))
    db.commit()
    db.close()
    parsed.clear()
    again, _ = _load(tree, cache)
    assert len(parsed) == 1 and again == cold  # that one file checked again
    db_path.write_bytes(b"this is not a database" * 100)  # a file half-written by something else
    parsed.clear()
    third, _ = _load(tree, cache)
    assert len(parsed) == 7 and third == cold
    parsed.clear()
    _load(tree, cache)
    assert parsed == []  # and the new database keeps them


def test_plan_fills_the_cache_and_apply_never_reads_or_writes_it(sandbox, tmp_path):
    repo = repository(tmp_path / "repo")
    cache = tmp_path / "cache"
    env = sandbox_env(sandbox, RECONCILER_CACHE_DIR=str(cache))
    assert reconciler(env, "apply", "--auto-approve", cwd=repo).returncode == 0
    assert not cache.exists()  # apply holds write credentials: it never unpickles a cache
    assert reconciler(env, "plan", cwd=repo).returncode == 0
    assert list(cache.glob("checked-*.db"))
    assert reconciler(env, "plan", "--no-cache", "--cache-dir", str(tmp_path / "other"), cwd=repo).returncode == 0
    assert not (tmp_path / "other").exists()
