"""Hardened YAML, built fast without changing what it means: PyYAML's tags memoised, and the lean builder
(positions looked up on demand) giving what the full builder gives, diagnostics included."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.yamldoc import _BaseLoader, _Loader, load_documents

from ..benchmarks.estate import write_estate

TRICKY = [
    "on",
    "yes",
    "No",
    "0123",
    "0x1F",
    "1e3",
    "1_000",
    "~",
    "null",
    "",
    "2026-01-01",
    ".nan",
    "-.inf",
    "30",
    "30.0",
    "Normal sleeve",
    "true",
    "True",
    "TRUE",
    "<<",
    "=",
    "12:30:00",
]


def _tags(loader_cls, text: str) -> list[str]:
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    return [v.tag for _, v in node.value]


def test_memoised_resolution_gives_pyyamls_tags_on_the_tricky_scalars():
    plain = [f"{s}" for s in TRICKY]
    quoted = [f'"{s}"' for s in TRICKY] + [f"'{s}'" for s in TRICKY] + ["[on, 1]", "{a: on}", "|\n  on"]
    text = "".join(f"k{i}: {s}\n" if s else f"k{i}:\n" for i, s in enumerate(plain + quoted))
    for _ in range(2):  # cold, then from the memo
        assert _tags(_Loader, text) == _tags(_BaseLoader, text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789.-+eExXoO_:~ntruefalsyNTRUEFALSY", max_size=12), min_size=1, max_size=8))
def test_memoised_resolution_agrees_with_pyyaml_on_random_plain_scalars(values):
    text = "".join(f"k{i}: {v}\n" for i, v in enumerate(values))  # plain scalars, as a manifest writes them
    try:
        expected = _tags(_BaseLoader, text)
    except yaml.YAMLError:
        return
    assert _tags(_Loader, text) == expected


REPO = Path(__file__).resolve().parent.parent.parent
UNUSUAL = [
    "a: on\n",
    "a: 0123\n",
    "a: 1\na: 2\n",
    "a: 2026-01-01\n",
    "a: .nan\n",
    "<<: {a: 1}\n",
    "? [a]\n: 1\n",
    "name: ab\u200bc\n",
    "a: caf\u00e9\n",
    "a: |\n  two\n  lines\n",
    'a: "tab\\there"\n',
    "a: !!set {x}\n",
    "a: yes\n",
    '"k\\x01": 1\n',
    "a: 1.0e+400\n",
]
CLEAN = [
    "a: 1\nb: [x, y, {c: null, d: true}]\n",
    "- 1\n- 2.5\n- -3\n",
    "plain\n",
    "{a: {b: {c: [[], {}]}}}\n",
    "a: 'quoted 0123'\nb: \"on\"\n",
    "a: !!str 5\n",
    "a: 1e400\n",
]


def _both(text: str):
    """(lean-or-fallback result, the full builder's result) for the same bytes."""
    return load_documents(text.encode(), "f.yaml"), load_documents(text.encode(), "f.yaml", spans=True)


def _probe_paths(full_doc):
    """Every recorded path, plus paths that are missing below them (answered by their nearest ancestor)."""
    paths = list(full_doc.positions)
    return paths + [p + ("missing",) for p in paths] + [p + (99,) for p in paths] + [("spec", 0, "x")]


def _assert_same(text: str) -> None:
    (lean_docs, lean_diags), (full_docs, full_diags) = _both(text)
    assert lean_diags == full_diags
    assert repr([d.data for d in lean_docs]) == repr([d.data for d in full_docs])  # repr: NaN, 1 vs 1.0 vs True
    for lean, full in zip(lean_docs, full_docs):
        assert (lean.broken, lean.value_errors, lean.surprises) == (full.broken, full.value_errors, full.surprises)
        for path in _probe_paths(full):
            assert lean.pos(path) == full.pos(path), path
            assert lean.scalar(path) == full.scalar(path), path
        shipped = pickle.loads(pickle.dumps(lean))  # as a template's document travels to the main process
        assert shipped.node is None and shipped.positions == full.positions and repr(shipped.data) == repr(full.data)


def test_lean_documents_equal_fully_built_ones_on_the_examples_and_an_estate(tmp_path):
    write_estate(tmp_path / "m", 20, 60)
    files = sorted(REPO.joinpath("manifests").rglob("*.yaml")) + sorted((tmp_path / "m").rglob("*.yaml"))
    assert len(files) > 20
    for path in files:
        _assert_same(path.read_text())
    docs, _ = load_documents(files[-1].read_bytes(), "f.yaml")
    assert all(d.node is not None for d in docs)  # the examples take the lean path


@pytest.mark.parametrize("text", UNUSUAL + CLEAN)
def test_unusual_documents_are_built_by_the_full_builder_with_the_same_diagnostics(text):
    _assert_same(text)
    docs, _ = load_documents(text.encode(), "f.yaml")
    assert all((d.node is None) == (text in UNUSUAL) for d in docs)


_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, width=32),
    st.sampled_from(TRICKY),
    st.text(max_size=8),
)
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet="abcXYZ_ -", min_size=1, max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_VALUE, st.booleans())
def test_lean_and_full_builders_agree_on_random_documents(value, flow):
    _assert_same(yaml.safe_dump({"spec": value}, default_flow_style=flow, allow_unicode=True))
