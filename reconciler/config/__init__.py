"""Configuration: reconciler.yaml beside the manifests, then the environment, then flags.

    settings.py     Settings: endpoints, credentials (environment only, as Secret), limits, time-outs
    environment.py  RunFacts: CI, commit, pull request, operator, GitHub (what the run's environment says)
    urls.py         base URLs fit to use (https, or loopback http) and fit to show (no userinfo)
    ignore.py       ignore rules: known drift with a reason and an expiry
    durations.py    `3s`, `5m`, `1h`: times as people type them

This package is the only reader of environment variables (the sandbox, a vendor of its own, reads its
own); tests/config/ holds its tests.
"""

from reconciler.config.durations import parse_duration
from reconciler.config.environment import RunFacts, ci_run_url, run_facts
from reconciler.config.ignore import IgnoreRule, glob_match, ignore_rule
from reconciler.config.settings import (
    CONFIG_FILE,
    OrionSettings,
    SeiSettings,
    Settings,
    load_settings,
    parse_now,
    plan_identity,
)
from reconciler.config.urls import mask_url, require_safe_url
from reconciler.secret import Secret

__all__ = [
    "CONFIG_FILE",
    "IgnoreRule",
    "OrionSettings",
    "RunFacts",
    "SeiSettings",
    "Secret",
    "Settings",
    "ci_run_url",
    "glob_match",
    "ignore_rule",
    "load_settings",
    "mask_url",
    "parse_duration",
    "parse_now",
    "plan_identity",
    "require_safe_url",
    "run_facts",
]
