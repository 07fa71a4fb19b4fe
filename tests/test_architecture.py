"""The README's architecture, held by tests: import contracts (pyproject.toml [tool.importlinter]),
module sizes, and a CLI that does no vendor I/O of its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "reconciler"
MAX_LINES = 400  # STYLE.md: split by responsibility before a module grows past a few hundred lines


def test_the_import_contracts_hold():
    """Layers, one home per third-party library, the sandbox's independence and its one door."""
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_is_over_the_size_limit():
    sizes = {str(p.relative_to(PACKAGE)): _lines(p) for p in PACKAGE.rglob("*.py")}
    too_big = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_big, f"over {MAX_LINES} lines: {too_big}; split the module by responsibility"


# what the CLI may import from vendors/: the connection it hands to library functions, doctor's checks and
# the reads it asks for by name; never a vendor client itself
LIBRARY_ENTRIES = {"reconciler.vendors.session", "reconciler.vendors.doctor", "reconciler.vendors.reads"}


def _names_vendors(node: ast.expr) -> bool:
    """`vendors` or `x.vendors`: the connection to Orion and SEI."""
    return (isinstance(node, ast.Name) and node.id == "vendors") or (
        isinstance(node, ast.Attribute) and node.attr == "vendors"
    )


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
                offenders += [
                    f"{path.relative_to(ROOT)}:{node.lineno} imports {n}"
                    for n in names
                    if n.startswith("reconciler.vendors") and n not in LIBRARY_ENTRIES
                ]
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
    modules = {
        f"reconciler.sandbox.{p.stem}"
        for p in (PACKAGE / "sandbox").glob("*.py")
        if p.stem not in ("__init__", "entry")
    }
    assert modules == set(door["protected_modules"]), modules ^ set(door["protected_modules"])


def _contract(contract_id: str) -> dict:
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["id"] == contract_id)


def _top_level() -> set[str]:
    """Every top-level package and module of reconciler (data folders such as schemas/ aside)."""
    names = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    names |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    return names


def test_the_sandbox_is_forbidden_every_other_package_and_module():
    """The emulator's independence contract names every top-level package and module but the sandbox."""
    forbidden = {m.removeprefix("reconciler.") for m in _contract("emulator-independent")["forbidden_modules"]}
    assert forbidden == _top_level() - {"sandbox"}, forbidden ^ (_top_level() - {"sandbox"})


def test_the_layers_name_every_top_level_package_and_module():
    layers = _contract("layers")
    assert layers["exhaustive"] is True
    named = {n.strip() for layer in layers["layers"] for n in layer.replace("|", ":").split(":")}
    assert named == _top_level(), named ^ _top_level()


def test_a_module_added_at_the_top_level_without_a_layer_fails_the_contracts(tmp_path):
    """lint-imports on a copy of the package with one unlayered module more: the exhaustive layers break."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(PACKAGE, tmp_path / "reconciler", ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "reconciler" / "newcomer.py").write_text('"""A module nobody placed in a layer."""\n')
    script = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "reconciler.newcomer" in done.stdout


def test_environment_variables_are_read_only_in_config():
    """config/ reads the environment (and the sandbox, a vendor of its own, reads its own credentials);
    every other module is handed Settings or RunFacts, so a test states facts instead of patching os.environ."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("config", "sandbox"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("environ", "getenv", "environb")
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                offenders.append(f"{rel}:{node.lineno}")
            if isinstance(node, (ast.Import, ast.ImportFrom)) and "getpass" in (
                [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            ):
                offenders.append(f"{rel}:{node.lineno} (getpass)")
    assert not offenders, offenders


def test_every_package_has_tests_in_its_mirror_folder():
    """tests/<package>/ holds tests that import reconciler.<package>: a reader finds a module's tests by its path."""
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    missing = []
    for name in packages:
        texts = [p.read_text() for p in (ROOT / "tests" / name).glob("test_*.py")]
        if not any(f"reconciler.{name}" in t for t in texts):
            missing.append(name)
    assert not missing, f"no tests/<package>/test_*.py imports these packages: {missing}"


def test_no_helper_is_defined_in_two_test_modules():
    """Helpers live once, in tests/helpers/: a copy in two test modules drifts apart."""
    seen: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith(("test_", "Test")):
                seen.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    twice = {name: where for name, where in seen.items() if len(where) > 1}
    assert not twice, twice


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_and_the_format_holds():
    """ruff's lint (pyflakes, pycodestyle, import order, pyupgrade, bugbear) and its formatter, as configured
    in pyproject.toml: what a reviewer would otherwise point out by hand."""
    lint = _tool("ruff", "check", "--no-cache", "reconciler", "tests")
    assert lint.returncode == 0, lint.stdout[-4000:]
    fmt = _tool("ruff", "format", "--check", "--no-cache", "reconciler", "tests")
    assert fmt.returncode == 0, fmt.stdout[-4000:] + "\n(run `ruff format reconciler tests`)"


def test_mypy_passes_with_every_function_of_plan_apply_and_state_typed(tmp_path):
    done = _tool("mypy", "--cache-dir", str(tmp_path / "mypy-cache"))
    assert done.returncode == 0, done.stdout[-4000:]
