"""The README's architecture, held by tests: import contracts (pyproject.toml [tool.importlinter]),
module sizes, and a CLI that does no vendor I/O of its own."""

from __future__ import annotations

import ast
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "reconciler"
MAX_LINES = 400
# Modules over the limit today, each pinned at its present length: they may shrink, never grow,
# and a new module never joins them. Empty is the goal (issue 18).
PINNED = {
    "providers/_http.py": 416,
    "sandbox/state.py": 411,
}


def test_the_import_contracts_hold():
    """Layers, one home per third-party library, the sandbox's independence and its one door."""
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_grows_past_the_size_limit():
    sizes = {str(p.relative_to(PACKAGE)): _lines(p) for p in PACKAGE.rglob("*.py")}
    too_big = {name: n for name, n in sizes.items() if n > PINNED.get(name, MAX_LINES)}
    assert not too_big, f"over {MAX_LINES} lines (or past the pinned length): {too_big}; split the module"
    shrunk = {name: sizes.get(name, 0) for name, n in PINNED.items() if sizes.get(name, 0) < n}
    assert not shrunk, f"pinned modules that shrank: lower their pin in this test (or drop it): {shrunk}"


def _names_vendors(node: ast.expr) -> bool:
    """`vendors` or `x.vendors`: the connection to Orion and SEI."""
    return (isinstance(node, ast.Name) and node.id == "vendors") or (isinstance(node, ast.Attribute) and node.attr == "vendors")


def test_the_cli_does_no_vendor_io():
    """The CLI hands `session.vendors` to library functions; it never calls Orion or SEI itself."""
    offenders = []
    for path in [PACKAGE / "cli.py", *sorted((PACKAGE / "cli").glob("*.py"))]:
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("orion", "sei") and _names_vendors(node.value):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} calls a vendor")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                              if n.startswith("reconciler.providers")]
    assert not offenders, offenders


def test_every_package_is_shipped():
    """setuptools lists packages by hand; a new subpackage left off would be missing from built installs."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)


def test_every_sandbox_module_but_its_entry_is_shut():
    """The sandbox-door contract lists the emulator's modules by name; a new one must join the list."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    door = next(c for c in contracts if c["id"] == "sandbox-door")
    modules = {f"reconciler.sandbox.{p.stem}" for p in (PACKAGE / "sandbox").glob("*.py")
               if p.stem not in ("__init__", "entry")}
    assert modules == set(door["protected_modules"]), modules ^ set(door["protected_modules"])
