"""The CLI as a real process: the environment that points it at a sandbox, and ways to run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["ROOT", "apply_reported", "quick_env", "reconciler", "sandbox_env", "start"]

ROOT = Path(__file__).resolve().parent.parent.parent


def quick_env(sb) -> dict[str, str]:
    """What points a CLI at sandbox `sb`, with quick retries: a 2 s read time-out, a 3 s settle window."""
    return {**sb.env(), "RECONCILER_MAX_ATTEMPTS": "4", "RECONCILER_READ_TIMEOUT": "2", "RECONCILER_SETTLE_WINDOW": "3"}


def sandbox_env(sb, *, workspace: Path | None = None, ci: bool | None = True, **extra: str) -> dict[str, str]:
    """The whole environment of a CLI process against `sb` (quick_env; CI mode, or none with `ci=False`, or
    as this process has it with `ci=None`); state under `workspace` when given, else found from the
    manifests as in real use."""
    env = {k: v for k, v in os.environ.items() if k != "RECONCILER_WORKSPACE" and not (k == "CI" and ci is not None)}
    env.update(quick_env(sb))
    if ci:
        env["CI"] = "true"
    if workspace is not None:
        env["RECONCILER_WORKSPACE"] = str(workspace)
    env.update(extra)
    return env


def reconciler(env: dict[str, str], *args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `reconciler ARGS` to its end in `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def apply_reported(
    env: dict[str, str], report: Path, *args: str, cwd: Path = ROOT
) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    """`reconciler apply --auto-approve --report REPORT ARGS`, and its report's items by address. In CI the
    log lists only the items that did not apply; the report has every item with its message."""
    r = reconciler(env, "apply", "--auto-approve", "--report", str(report), *args, cwd=cwd)
    items = {i["address"]: i for i in json.loads(report.read_text())["items"]} if report.exists() else {}
    return r, items


def start(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.Popen:
    """Start `reconciler ARGS` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
