"""A partial plan (`plan --changed-since`) is the full plan restricted to what it covers (issue 30).

The property, over random change sets to the example repository (a field, a template, a moved file, a
deleted file, a new file, a renamed template; committed or not): after the edits,
- the partial plan and the full plan agree, resource for resource, on every resource the partial covers;
- every resource whose full plan differs from the one at the base commit is covered, or named as no
  longer managed here;
- the partial plan fails exactly when the full plan fails.
Plans are the library's (`plan_stream`) against the sandbox over loopback, as the CLI runs them.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import ReconcilerError
from reconciler.manifests import ManifestStream
from reconciler.plan.changes import changed_scope, declared_in
from reconciler.plan.stream import plan_stream
from reconciler.vendors import open_vendors

from ..helpers.trees import committed_repository, git
from ..helpers.vendors import settings_for

REGISTRATIONS = (
    "registrations/east/chen-ira.yaml",
    "registrations/east/okafor-trust.yaml",
    "registrations/west/rivera-household.yaml",
    "registrations/west/sd-regname1.yaml",
)
TRADES = ("trades/div-income-2026-11-20.yaml", "trades/lcg-rebalance-2026-11-20.yaml")


def _outcome(repo: Path, vendors, settings, files=None):
    """address → (action, fields) of a plan, or the kind of error it raised."""
    paths = (str(repo / "manifests"),)
    try:
        stream = ManifestStream(paths, files=files, allow_empty=files is not None).start()
        try:
            plan = plan_stream(paths, vendors, settings, stream=stream).plan
        finally:
            stream.close()
    except ReconcilerError as e:
        return type(e).__name__
    return {
        c.address: (c.action.value, tuple((f.path, repr(f.before), repr(f.after)) for f in c.fields))
        for c in plan.changes
    }


# --- the edits -----------------------------------------------------------------------------------


def _field(repo: Path, which: int, value: int) -> None:
    path = repo / "manifests" / REGISTRATIONS[which % len(REGISTRATIONS)]
    if not path.exists():  # moved or deleted by an earlier edit
        return
    text = path.read_text()
    text = re.sub(r"\n  autoRebalDay: \d+", "", text)
    path.write_text(text.rstrip("\n") + f"\n  autoRebalDay: {value}\n")


def _template_file(repo: Path) -> Path:
    return next(p for p in sorted((repo / "manifests").rglob("*.yaml")) if "kind: SleeveTemplate" in p.read_text())


def _template(repo: Path, _: int, value: int) -> None:
    path = _template_file(repo)
    path.write_text(re.sub(r"autoRebalDay: \d+", f"autoRebalDay: {value}", path.read_text()))


def _move_template(repo: Path, which: int, _: int) -> None:
    path, target = _template_file(repo), f"manifests/templates/moved-{which}.yaml"
    if path != repo / target:
        git(repo, "mv", "-f", str(path.relative_to(repo)), target)


def _move(repo: Path, which: int, _: int) -> None:
    rel = REGISTRATIONS[which % len(REGISTRATIONS)]
    if (repo / "manifests" / rel).exists():
        (repo / "manifests" / "moved").mkdir(exist_ok=True)
        git(repo, "mv", "-f", f"manifests/{rel}", f"manifests/moved/{which}-{Path(rel).name}")


def _delete(repo: Path, which: int, _: int) -> None:
    rel = (REGISTRATIONS + TRADES)[which % (len(REGISTRATIONS) + len(TRADES))]
    if (repo / "manifests" / rel).exists():
        git(repo, "rm", "-qf", f"manifests/{rel}")


def _new(repo: Path, which: int, value: int) -> None:
    if which % 2:  # a registration the manifests did not declare (31551 exists in the sandbox)
        (repo / "manifests" / "registrations" / "new-31551.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: SleeveRegistration\nmetadata: {name: new-31551}\n"
            f"spec:\n  registrationId: 31551\n  template: equity-mf-20-30-50\n  autoRebalDay: {value}\n"
        )
    else:  # a new trade batch, new tickets
        src = (repo / "manifests" / TRADES[0]).read_text() if (repo / "manifests" / TRADES[0]).exists() else None
        if src is None:
            return
        text = src.replace("DIV-20261120-01", "DIV-20261121-09").replace("div-income-2026-11-20", "div-new")
        text = text.replace("10000101", "10000801").replace("10000102", "10000802")
        (repo / "manifests" / "trades" / "div-new.yaml").write_text(text)


def _rename_template(repo: Path, which: int, _: int) -> None:
    """A renamed template; its users follow it, or (odd `which`) do not, which breaks them."""
    path = _template_file(repo)
    path.write_text(path.read_text().replace("name: equity-mf-20-30-50", "name: core-renamed"))
    if which % 2 == 0:
        for rel in REGISTRATIONS:
            path = repo / "manifests" / rel
            if path.exists():
                path.write_text(path.read_text().replace("template: equity-mf-20-30-50", "template: core-renamed"))


EDITS = (_field, _template, _move, _delete, _new, _rename_template, _move_template)
edit = st.tuples(st.sampled_from(EDITS), st.integers(0, 11), st.integers(1, 28))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return committed_repository(tmp_path_factory.mktemp("changes") / "base")


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same 200 change sets in every run: a failure here is a bug, never luck
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=st.lists(edit, min_size=1, max_size=4), commit=st.booleans())
def test_a_partial_plan_is_the_full_plan_restricted_to_what_it_covers(sandbox, base, edits, commit):
    settings_ = settings_for(sandbox)
    with open_vendors(settings_) as vendors, tempfile.TemporaryDirectory() as tmp:
        before = _outcome(base, vendors, settings_)
        repo = Path(tmp) / "repo"
        shutil.copytree(base, repo)
        for fn, which, value in edits:
            fn(repo, which, value)
        if commit:
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", "edits", "--allow-empty")
        scope = changed_scope((str(repo / "manifests"),), "HEAD~1" if commit else "HEAD")
        assert scope is not None  # no edit touches reconciler.yaml
        full = _outcome(repo, vendors, settings_)
        partial = _outcome(repo, vendors, settings_, files=list(scope.files))
        if isinstance(full, str) or isinstance(partial, str):
            assert full == partial, (edits, full, partial)
            return
        covered = _covered(scope)
        assert {a: v for a, v in full.items() if a in covered} == partial, edits
        assert set(partial) <= covered, edits
        assert isinstance(before, dict)
        affected = {a for a in set(before) | set(full) if before.get(a) != full.get(a)}
        gone = {a for a, _ in scope.gone}
        assert affected <= covered | gone, (edits, affected - covered - gone)


def _covered(scope) -> set[str]:
    """The addresses declared in the files a partial plan reads (templates and policies declare none)."""
    out: set[str] = set()
    for path, display in scope.files:
        out |= declared_in(path.read_bytes(), display)[0]
    return out


def test_no_change_is_an_empty_scope_and_a_config_change_asks_for_a_full_plan(base, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(base, repo)
    scope = changed_scope((str(repo / "manifests"),), "HEAD")
    assert scope is not None and not scope.changed and not scope.gone and not scope.templates
    (repo / "reconciler.yaml").write_text("batchSize: 50\n")
    assert changed_scope((str(repo / "manifests"),), "HEAD") is None
    with pytest.raises(ReconcilerError, match="no such revision"):
        changed_scope((str(repo / "manifests"),), "no-such-branch")
