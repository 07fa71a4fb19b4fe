"""Live state → manifests, for adopting what already exists (`reconciler import`).

Server-owned fields are left out, fields at their API defaults are omitted, Custodial/Contribution/
Distribution sleeves are left out (the manifest then leaves them alone), and sleeves carry their
accountId only where (sleeveType, model) would not tell them apart. A plan right after an import
shows no changes.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reconciler.errors import LiveStateError, ReconcilerError
from reconciler.fields import (
    ASSIGNED,
    COUNTED_SLEEVE_TYPES,
    INSTRUCTION_FIELDS,
    REGISTRATION_DEFAULTS,
    REGISTRATION_FIELDS,
    SLEEVE_DEFAULTS,
    TARGET_BALANCE_TYPES,
    normalise_method,
    sleeve_model_id,
)
from reconciler.files import write_private
from reconciler.version import __version__

__all__ = [
    "managed_by",
    "read_registrations",
    "read_tradebatch",
    "registration_manifest",
    "render_imported",
    "schema_line",
    "slug",
    "tradebatch_manifest",
    "write_imported",
]

API_VERSION = "reconciler/v1"
_SLEEVE_ORDER = (
    "sleeveType",
    "modelAggId",
    "targetAllocation",
    "contributionAllocation",
    "distributionAllocation",
    "corporateActionAllocation",
    "managementStyleId",
    "subAdvisorId",
    "toleranceLower",
    "toleranceUpper",
    "targetBalanceType",
    "doNotTrade",
    "minimumCash",
    "replenishMinCash",
    "minimumInvestmentAmount",
)
_BILLING_IDS = ("billFeeScheduleId", "billMasterPayoutScheduleId")


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:200] or "imported"


def _number(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _is_default(value: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        return any(_is_default(value, d) for d in default)
    if isinstance(value, bool) or isinstance(default, bool) or value is None or default is None:
        return value is default or (type(value) is type(default) and value == default)
    return value == default  # numbers by value: 0.0 is the default 0


def registration_manifest(reg: dict, name: str | None = None) -> dict:
    spec: dict[str, Any] = {"registrationId": reg["registrationId"]}
    for f in REGISTRATION_FIELDS:  # the declarable fields, in the catalogue's order
        if f not in reg:
            continue
        v = reg[f]
        if f in REGISTRATION_DEFAULTS and _is_default(v, REGISTRATION_DEFAULTS[f]):
            continue
        if f in ("autoRebalMonth", "autoRebalDay") and reg.get("autoRebalFrequency") in (None, "None"):
            continue  # meaningless without a schedule
        if f in ("custodialBilling", "sleeveBilling"):
            ids = {k: v.get(k) for k in _BILLING_IDS if isinstance(v, dict) and v.get(k) is not None}
            if ids:
                spec[f] = ids
            continue
        if v is not None:
            spec[f] = _number(v)
    assigned = {
        "contributionAllocation": normalise_method(reg.get("contributionAllocationMethod")) == ASSIGNED,
        "distributionAllocation": normalise_method(reg.get("distributionAllocationMethod")) == ASSIGNED,
    }
    managed = [s for s in reg.get("accountSleeves") or [] if s.get("sleeveType") in COUNTED_SLEEVE_TYPES]
    keys = [(s.get("sleeveType"), sleeve_model_id(s)) for s in managed]
    sleeves = []
    for s, key in zip(managed, keys):
        out: dict[str, Any] = {}
        if keys.count(key) > 1:
            out["accountId"] = s["accountId"]  # (type, model) alone would be ambiguous
        for f in _SLEEVE_ORDER:
            v = s.get(f)
            if f == "modelAggId":
                v = sleeve_model_id(s)
            if f in ("contributionAllocation", "distributionAllocation") and assigned[f]:
                out[f] = _number(v or 0)  # declared in full, so validate can check the sums
                continue
            if f == "targetBalanceType" and TARGET_BALANCE_TYPES.get(v, v) == "Percent":
                continue
            if f in SLEEVE_DEFAULTS and _is_default(v, SLEEVE_DEFAULTS[f]):
                continue
            if v is not None:
                out[f] = _number(v)
        sleeves.append(out)
    spec["accountSleeves"] = sleeves
    return {
        "apiVersion": API_VERSION,
        "kind": "SleeveRegistration",
        "metadata": {"name": name or f"registration-{reg['registrationId']}"},
        "spec": spec,
    }


def tradebatch_manifest(batch_id: str, rows: list[dict]) -> dict:
    """One TradeBatch from SEI's rows: fields every instruction shares become batch defaults."""
    tickets: dict[int, dict] = {}
    for row in rows:
        tid = int(row["tradeTicketId"])
        if tid not in tickets:  # a ticket has a row per filled order; its instruction fields repeat
            fields = {f: row[f] for f in INSTRUCTION_FIELDS if f != "batchId" and row.get(f) is not None}
            fields["side"] = str(fields.get("side", "")).title()
            tickets[tid] = {k: _number(v) for k, v in fields.items()}
    instructions = [tickets[t] for t in sorted(tickets)]
    shared = {}
    if len(instructions) > 1:
        for f in INSTRUCTION_FIELDS:
            if f in ("batchId", "tradeTicketId"):
                continue
            values = {repr(i.get(f, "<absent>")) for i in instructions}
            if len(values) == 1 and f in instructions[0]:
                shared[f] = instructions[0][f]
    spec: dict[str, Any] = {"batchId": batch_id, **shared}
    spec["instructions"] = [
        {
            "tradeTicketId": i["tradeTicketId"],
            **{k: v for k, v in i.items() if k not in shared and k != "tradeTicketId"},
        }
        for i in instructions
    ]
    return {"apiVersion": API_VERSION, "kind": "TradeBatch", "metadata": {"name": slug(batch_id)}, "spec": spec}


def _header(vendor: str, origin: str, what: str, when: str) -> str:
    host = urlsplit(origin).netloc or origin  # never more than the host: no credentials, no paths
    return f"Imported by reconciler {__version__} on {when} from {vendor} ({host}): {what}.\nReview it, then commit."


def schema_line(kind: str, folder: Path) -> str:
    """The editor's schema line for a file written into `folder`, as the hand-written manifests carry it:
    the nearest `schemas/` above the folder that has the kind's schema, by relative path; "" if none."""
    from reconciler.manifests.schema import KIND_SCHEMAS

    name = KIND_SCHEMAS.get(kind)
    if name is None:
        return ""
    start = folder.resolve()
    for parent in (start, *start.parents):
        schema = parent / "schemas" / name
        if schema.is_file():
            return f"# yaml-language-server: $schema={os.path.relpath(str(schema), str(start))}\n"
    return ""


def render_imported(docs: list[tuple[dict, str]], vendor: str, origin: str, folder: Path | None = None) -> str:
    """All documents as one YAML stream, each with its provenance header; the editor's schema line first
    where the file goes into a tree with `schemas/` (`folder`: where it is written; stdout: the cwd)."""
    from reconciler.manifests.writer import dump_manifests

    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    line = schema_line(docs[0][0].get("kind", ""), folder or Path.cwd()) if docs else ""
    return line + "---\n".join(dump_manifests([d], _header(vendor, origin, what, when)) for d, what in docs)


def write_imported(docs: list[tuple[dict, str]], vendor: str, origin: str, output: str, *, force: bool) -> list[Path]:
    """A directory (`output` ends with / or exists as one) gets one file per resource; else one file.

    Existing files are never overwritten without `force`, and then nothing at all is written.
    """
    target = Path(output)
    if output.endswith("/") or target.is_dir():
        files = [(target / f"{d['metadata']['name']}.yaml", [(d, w)]) for d, w in docs]
    else:
        files = [(target, docs)]
    links = [str(p) for p, _ in files if os.path.islink(p)]
    if links:  # a planted (or dangling) link would send the manifest somewhere else
        raise ReconcilerError(f"refusing to write through the symbolic link(s) {', '.join(links)}; nothing was written")
    existing = [str(p) for p, _ in files if os.path.lexists(p)]
    if existing and not force:
        raise ReconcilerError(f"refusing to overwrite {', '.join(existing)} (pass --force); nothing was written")
    for path, group in files:
        # manifests are meant to be committed: readable like other source files, written atomically
        write_private(path, render_imported(group, vendor, origin, path.parent), mode=0o644)
    return [p for p, _ in files]


def read_registrations(vendors, ids: list[int], settings) -> dict[int, dict]:
    """The live registrations `ids`, in one bulk read; LiveStateError naming any Orion does not hold."""
    live = vendors.orion.list_with_sleeves(list(ids), chunk=settings.read_chunk, workers=settings.read_workers)
    missing = [i for i in ids if i not in live]
    if missing:
        raise LiveStateError(f"not found in Orion: registration {', '.join(map(str, missing))}; nothing was written")
    return live


def read_tradebatch(vendors, batch_id: str) -> list[dict]:
    """Every ticket row of one model change; LiveStateError when SEI holds none."""
    rows = [r for r in vendors.sei.iter_tickets() if str(r.get("batchId")) == batch_id]
    if not rows:
        raise LiveStateError(f"SEI holds no tickets with batchId {batch_id!r}; nothing was written")
    return rows


def managed_by(output: str, key: str, wanted: list[str]) -> dict[str, str]:
    """Which of `wanted` (registrationIds or batchIds) a manifest in the tree that `output` writes into
    already declares, and where: {id: file}. The tree is the nearest folder above `output` named
    `manifests`, else `output`'s own folder. A quick look at the text (the key and its value), so a tree
    with errors elsewhere is still searched."""
    from reconciler.manifests.tree import iter_manifest_files

    start = Path(output).resolve()
    start = start if start.is_dir() else start.parent
    tree = next((p for p in (start, *start.parents) if p.name == "manifests"), start)
    if not tree.exists():
        return {}
    pattern = re.compile(rf"^\s*{re.escape(key)}:\s*['\"]?([^'\"\s#]+)", re.MULTILINE)
    want = set(wanted)
    found: dict[str, str] = {}
    files, _ = iter_manifest_files([str(tree)])
    for path, display in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for m in pattern.finditer(text):
            if m.group(1) in want and m.group(1) not in found:
                found[m.group(1)] = display
    return found
