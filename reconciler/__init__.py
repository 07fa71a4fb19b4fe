"""reconciler: Orion sleeve registrations and SEI trade instructions managed as code.

The public API, for a Python user who wants the CLI's steps without the CLI:

    import reconciler

    settings = reconciler.load_settings(["manifests"])
    with reconciler.open_session(settings) as session:           # or sandbox=True
        result = reconciler.plan_stream(("manifests",), session.vendors, session.settings)
    print(reconciler.render_plan_text(result.plan))

    stream = reconciler.ManifestStream(("manifests",)).start()     # apply streams the tree as plan does
    code = reconciler.run_apply(reconciler.ApplyRequest(...), stream, settings, out)

Names load on first use (PEP 562), so `import reconciler` stays as cheap as the CLI's start-up.
Everything else is internal and may change; tests/test_public_api.py guards this list.
"""

from __future__ import annotations

import importlib
from typing import Any

from reconciler.version import __version__

# name → the module that defines it
_EXPORTS = {
    # load and check
    "load_manifests": "reconciler.manifests",
    "ManifestStream": "reconciler.manifests",
    "ManifestSet": "reconciler.model",
    "load_settings": "reconciler.config",
    "Settings": "reconciler.config",
    # read and plan
    "open_session": "reconciler.vendors.session",
    "plan_stream": "reconciler.plan.stream",
    "StreamedPlan": "reconciler.plan.stream",
    "read_live_state": "reconciler.vendors.reads",
    "build_plan": "reconciler.plan.builder",
    "Targeting": "reconciler.plan.targeting",
    "Plan": "reconciler.model",
    "Change": "reconciler.model",
    "Action": "reconciler.model",
    "render_plan_text": "reconciler.render",
    "render_plan_markdown": "reconciler.render",
    "plan_to_document": "reconciler.plan.document",
    # apply
    "ApplyRequest": "reconciler.apply.run",
    "run_apply": "reconciler.apply.run",
    # audit
    "build_drift_report": "reconciler.audit.drift",
    "DriftReport": "reconciler.audit.drift",
    "Finding": "reconciler.audit.drift",
    # errors
    "ReconcilerError": "reconciler.errors",
    "ManifestError": "reconciler.errors",
    "Diagnostic": "reconciler.errors",
    "ConfigError": "reconciler.errors",
    "ApiError": "reconciler.errors",
    "ApiAuthError": "reconciler.errors",
    "AmbiguousWriteError": "reconciler.errors",
    "LiveStateError": "reconciler.errors",
    "PlanFileError": "reconciler.errors",
    "PlanBlockedError": "reconciler.errors",
    "LockError": "reconciler.errors",
    "StateBackendError": "reconciler.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'reconciler' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
