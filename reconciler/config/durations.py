"""Durations as people type them: `90` (seconds), `3s`, `500ms`, `5m`, `1h`, `1m30s`.

Terraform users write `-lock-timeout=3s`; every time this tool accepts (flags, RECONCILER_* variables,
reconciler.yaml) goes through `parse_duration`, so the same spellings work everywhere.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Seconds, written as a Terraform user types them (`-lock-timeout=3s`): a bare number, or parts such
    as `3s`, `500ms`, `5m`, `1h`, `1m30s`. Raises ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not text or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"{value!r} is not a duration") from None
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a duration")
    return seconds
