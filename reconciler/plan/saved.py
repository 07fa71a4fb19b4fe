"""Saved plans: everything apply needs, written atomically with mode 0600, known by their content.

A saved plan holds the plan document with ticket bodies, a fingerprint of each touched resource's live
state, the manifests' digest, the tool version, an expiry, the vendor endpoints it was made against
(never their credentials or userinfo) and the targeting it was made with, so `apply FILE` can
recompute it and treat the file as a receipt (receipt.py). Its id is the SHA-256 of its bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.config.environment import RunFacts
from reconciler.errors import PlanFileError
from reconciler.files import write_private
from reconciler.model import Plan
from reconciler.plan.document import FORMAT_VERSION, plan_from_document, plan_to_document
from reconciler.secret import Secret

__all__ = [
    "SavedPlan",
    "binding_problems",
    "current_binding",
    "destination",
    "load_plan",
    "manifests_commit",
    "save_plan",
]

KIND = "reconciler-plan"


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    plan_id: str
    created_at: dt.datetime
    expires_at: dt.datetime
    manifests_digest: str
    paths: tuple[str, ...]
    tool_version: str
    batch_size: int
    document: dict[str, Any]
    endpoints: dict[str, str]
    targeting: dict[str, list]
    binding: dict[str, Any]  # commit, pull_request, environment it was made for (under the encryption)
    sealed: bool  # whether the file was encrypted

    def expired(self, now: dt.datetime | None = None) -> bool:
        return (now or dt.datetime.now(dt.UTC)) >= self.expires_at


def save_plan(
    path: str | Path,
    plan: Plan,
    manifests_digest: str,
    paths: tuple[str, ...],
    *,
    batch_size: int,
    expiry_hours: float,
    endpoints: dict[str, str],
    targeting: dict[str, list] | None = None,
    now: dt.datetime | None = None,
    binding: dict[str, Any] | None = None,
    recipients: tuple[str, ...] = (),
) -> str:
    """Write the plan, encrypted to `recipients` when there are any; returns its id (of the plaintext)."""
    now = now or dt.datetime.now(dt.UTC)
    doc = plan_to_document(plan, include_payloads=True)
    doc["kind"] = KIND
    doc["saved"] = {
        "created_at": now.isoformat(timespec="seconds"),
        "expires_at": (now + dt.timedelta(hours=expiry_hours)).isoformat(timespec="seconds"),
        "manifests_digest": manifests_digest,
        "paths": list(paths),
        "batch_size": batch_size,
        "endpoints": dict(endpoints),
        "targeting": targeting or {"targets": [], "excludes": [], "selectors": []},
        "binding": binding or {},
    }
    data = (json.dumps(doc, indent=1, default=str, allow_nan=False) + "\n").encode()  # keeps field order
    from reconciler.sealing import for_upload

    write_private(path, for_upload(data, recipients)[0])
    return hashlib.sha256(data).hexdigest()[:16]


def destination(endpoints: dict[str, str]) -> str:
    """Where a plan goes, for people: its environment and both hosts (never credentials)."""

    def host(url: str) -> str:
        return url.split("://", 1)[-1].split("/", 1)[0] or "(not recorded)"

    return (
        f"For: {endpoints.get('environment') or 'custom'} (Orion {host(endpoints.get('orion', ''))}, "
        f"SEI {host(endpoints.get('sei', ''))})"
    )


def current_binding(environment: str | None, facts: RunFacts, paths: Sequence[str] = ()) -> dict[str, Any]:
    """What this run is for: the commit (RECONCILER_COMMIT, else GITHUB_SHA, else the manifests' own
    repository: `manifests_commit`), the pull request (RECONCILER_PULL_REQUEST, else GITHUB_REF
    refs/pull/N/…) and the environment."""
    return {
        "commit": facts.commit or manifests_commit(paths),
        "pull_request": facts.pull_request,
        "environment": environment,
    }


def manifests_commit(paths: Sequence[str]) -> str | None:
    """HEAD of the repository that holds the manifests (wherever the command was started from), with
    `+dirty (N files)` when the manifests have changes Git has not committed: evidence names what was
    really planned or audited. None outside Git."""
    import subprocess

    first = Path((tuple(paths) or ("manifests",))[0]).resolve()
    folder = first if first.is_dir() else first.parent
    if not folder.exists():
        return None

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout

    try:
        head = git("rev-parse", "HEAD").strip()
        targets = [str(Path(p).resolve()) for p in (paths or (str(first),))]
        changed = [ln for ln in git("status", "--porcelain", "--", *targets).splitlines() if ln.strip()]
    except (OSError, subprocess.SubprocessError):
        return None
    if not head:
        return None
    return f"{head}+dirty ({len(changed)} file{'s' * (len(changed) != 1)})" if changed else head


def binding_problems(bound: dict[str, Any], current: dict[str, Any], *, ci: bool) -> list[str]:
    """A replayed plan: made for another environment, or (in CI, where RECONCILER_COMMIT names the
    reviewed commit) for another commit. Both are named."""
    problems = []
    if bound.get("environment") and bound["environment"] != current.get("environment"):
        problems.append(
            f"the plan was made for the environment {bound['environment']!r}, not {current.get('environment')!r}"
        )
    if ci and current.get("expected_commit") and bound.get("commit") != current["expected_commit"]:
        problems.append(
            f"the plan was made for commit {bound.get('commit') or '(none recorded)'}, not "
            f"{current['expected_commit']} (RECONCILER_COMMIT): an older plan replayed"
        )
    return problems


def load_plan(path: str | Path, identity: Secret | None = None) -> SavedPlan:
    """Read a saved plan, decrypting it with `identity` (RECONCILER_PLAN_IDENTITY) if it is encrypted."""
    from reconciler.sealing import is_sealed, unseal

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise PlanFileError(f"{path}: cannot read the saved plan ({e.strerror})") from e
    sealed = is_sealed(data)
    if sealed:
        data = unseal(data, identity, str(path))
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise PlanFileError(f"{path}: not a saved plan (not JSON); create one with `reconciler plan --out FILE`") from e
    if not isinstance(doc, dict) or doc.get("kind") != KIND or "saved" not in doc:
        raise PlanFileError(f"{path}: not a saved plan; create one with `reconciler plan --out FILE`")
    if doc.get("format_version") != FORMAT_VERSION:
        raise PlanFileError(
            f"{path}: plan format {doc.get('format_version')!r} is not {FORMAT_VERSION!r}; "
            f"plan again with this version of reconciler"
        )
    from reconciler.manifests.schema import validate_instance

    problems = validate_instance("plan.schema.json", doc)
    if problems:
        raise PlanFileError(f"{path}: the saved plan is damaged: {problems[0]}")
    saved = doc["saved"]
    try:
        return SavedPlan(
            plan=plan_from_document(doc),
            plan_id=hashlib.sha256(data).hexdigest()[:16],
            created_at=dt.datetime.fromisoformat(saved["created_at"]),
            expires_at=dt.datetime.fromisoformat(saved["expires_at"]),
            manifests_digest=saved["manifests_digest"],
            paths=tuple(saved["paths"]),
            tool_version=doc.get("tool_version", "?"),
            batch_size=int(saved["batch_size"]),
            document=doc,
            endpoints={k: str(v) for k, v in (saved.get("endpoints") or {}).items()},
            targeting={k: list(v) for k, v in (saved.get("targeting") or {}).items()},
            binding=dict(saved.get("binding") or {}),
            sealed=sealed,
        )
    except (KeyError, ValueError, TypeError) as e:
        raise PlanFileError(f"{path}: the saved plan is damaged ({type(e).__name__}: {e})") from e
