"""`history export`: an evidence pack an auditor can take away.

The pack is a folder: the period's records as JSON (the population to sample) and CSV (for a
spreadsheet), `chain.json` (how many records the chain holds, its head hash, and `verify`'s result
over the whole chain, not just the period), and `index.html`, one self-contained page: summary per
month and per operator, emergency changes, drift opened and ended, every change record. Where plan
recipients are configured each file is encrypted to them (`.age`), like every other upload.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from reconciler.files import write_private
from reconciler.render.history import history_csv, history_summary
from reconciler.render.html import render_history_html
from reconciler.sealing import for_upload
from reconciler.state.history import Chain, record_time
from reconciler.version import __version__

__all__ = ["write_pack"]


def write_pack(
    output: str,
    records: list[dict[str, Any]],
    chain: Chain,
    *,
    period: tuple[str | None, str | None],
    recipients: tuple[str, ...],
    now: dt.datetime | None = None,
) -> list[str]:
    """Write the pack into `output` (created 0700 if missing); returns the files written."""
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    exported = record_time(now)
    since, until = period
    summary = history_summary(records)
    doc = {
        "period": f"{since or 'the first record'} to {until or 'now'}",
        "exported_at": exported,
        "tool_version": __version__,
        "chain": chain.as_dict(),
        "summary": summary,
        "changes": sum(m["changes"] for m in summary["months"]),
        "drift_opened": sum(m["drift_opened"] for m in summary["months"]),
        "drift_closed": sum(m["drift_closed"] for m in summary["months"]),
        "changes_list": [r for r in records if r.get("kind") == "change"],
    }
    files = {
        "records.json": json.dumps(records, indent=2, ensure_ascii=False) + "\n",
        "records.csv": history_csv(records),
        "chain.json": json.dumps(
            {**chain.as_dict(), "exported_at": exported, "period": {"since": since, "until": until}}, indent=2
        )
        + "\n",
        "index.html": render_history_html(doc),
    }
    written = []
    for name, text in files.items():
        data, sealed = for_upload(text.encode(), recipients)
        path = folder / (name + ".age" if sealed else name)
        write_private(str(path), data)
        written.append(str(path))
    return written
