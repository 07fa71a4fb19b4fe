"""The public API (`reconciler/__init__.py`): exactly these names, each resolvable, loaded lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import reconciler

EXPECTED = {
    "__version__",
    "load_manifests",
    "ManifestStream",
    "ManifestSet",
    "load_settings",
    "Settings",
    "open_session",
    "plan_stream",
    "StreamedPlan",
    "read_live_state",
    "build_plan",
    "Targeting",
    "Plan",
    "Change",
    "Action",
    "render_plan_text",
    "render_plan_markdown",
    "plan_to_document",
    "ApplyRequest",
    "run_apply",
    "build_drift_report",
    "DriftReport",
    "Finding",
    "ReconcilerError",
    "ManifestError",
    "Diagnostic",
    "ConfigError",
    "ApiError",
    "ApiAuthError",
    "AmbiguousWriteError",
    "LiveStateError",
    "PlanFileError",
    "PlanBlockedError",
    "LockError",
    "StateBackendError",
}
ROOT = Path(__file__).resolve().parent.parent


def test_the_exported_names_are_exactly_the_public_api():
    assert set(reconciler.__all__) == EXPECTED  # adding or removing a name is a deliberate change here


def test_every_exported_name_resolves_and_errors_share_one_root():
    for name in reconciler.__all__:
        assert getattr(reconciler, name) is not None, name
    for name in EXPECTED:
        if name.endswith("Error") and name != "ReconcilerError":
            assert issubclass(getattr(reconciler, name), reconciler.ReconcilerError), name
    assert set(EXPECTED) <= set(dir(reconciler))


def test_an_unknown_name_is_an_attribute_error():
    try:
        reconciler.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:
        raise AssertionError("reconciler.no_such_thing resolved")


def test_importing_the_package_loads_no_vendor_library():
    libraries = "('httpx', 'jsonschema', 'deepdiff', 'rich')"
    code = f"import reconciler, sys; print(sorted(m for m in {libraries} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_the_api_loads_the_example_estate():
    manifests = reconciler.load_manifests([str(ROOT / "manifests")])
    assert isinstance(manifests, reconciler.ManifestSet) and manifests.registrations
