"""`drift --adopt`: write the live values of drifted declared fields back into the manifests.

The other answer to drift (the first is `apply`): the change in Orion was right, so Git learns it.
Edits are surgical: the loader knows the exact character span and quoting style of every value, so
only the scalars that change are rewritten and every other byte stays (comments, key order, flow or
block style, quoting, blank lines). Structure is edited in the style of its neighbours: a live
Normal/Unmanaged sleeve the manifest lacks becomes one more `- {…}` line; a declared sleeve gone
from live loses its lines. A shared SleeveTemplate is never edited: what a registration takes from
its template becomes an override in the registration's own manifest. A registration whose adopted
state would break a rule `validate` enforces is left as it is, with the rule named. Missing trade
instructions are never adopted (a ticket missing at SEI is not a change of mind). Nothing is
written to a vendor; each file is replaced atomically.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.audit.importer import registration_manifest
from reconciler.config.ignore import IgnoreRule
from reconciler.escaping import terminal
from reconciler.manifests.rules import iter_registration_problems
from reconciler.manifests.tree import iter_manifest_files
from reconciler.model import ManifestSet
from reconciler.plan.diff import diff_registration, match_sleeves
from reconciler.yamldoc import Document, load_documents

__all__ = ["Adoption", "plan_adoption", "write_adoption"]


@dataclass(frozen=True)
class Edit:
    start: int
    end: int
    text: str


@dataclass
class Adoption:
    texts: dict[str, tuple[str, str]] = field(default_factory=dict)  # display → (before, after)
    paths: dict[str, Path] = field(default_factory=dict)
    adopted: list[str] = field(default_factory=list)  # lines for people
    left: list[str] = field(default_factory=list)

    def diff(self) -> str:
        out: list[str] = []
        for name, (old, new) in sorted(self.texts.items()):
            if old != new:
                out += difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{name}", f"b/{name}")
        return "".join(out)


_PLAIN_OK = re.compile(r"^[A-Za-z][A-Za-z0-9 ._/-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "none", "~", "y", "n"}


def _scalar(value: Any, style: str = "") -> str:
    """One YAML scalar, in the original quoting style where it had one; never one YAML 1.1 retypes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if style == "'":
        return "'" + text.replace("'", "''") + "'"
    if style == '"' or not _PLAIN_OK.match(text) or text.lower() in _YAML_WORDS or text != text.strip():
        return json.dumps(text, ensure_ascii=False)
    return text


def _flow(mapping: dict) -> str:
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in mapping.items()) + "}"


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end + 1


def _find(docs: list[Document], kind: str, name: str) -> Document | None:
    for d in docs:
        data = d.data if isinstance(d.data, dict) else {}
        if data.get("kind") == kind and (data.get("metadata") or {}).get("name") == name:
            return d
    return None


def plan_adoption(
    manifests: ManifestSet,
    live,
    ignore: tuple[IgnoreRule, ...],
    paths: tuple[str, ...],
    wanted=lambda address, labels: True,
) -> Adoption:
    files, _ = iter_manifest_files(paths)
    real = {display: path for path, display in files}
    out = Adoption()
    edits: dict[str, list[Edit]] = {}
    parsed: dict[str, list[Document]] = {}
    for desired in sorted(manifests.registrations, key=lambda r: r.address):
        if not wanted(desired.address, desired.labels):
            continue
        current = live.registrations.get(desired.registration_id)
        if current is None:
            out.left.append(f"{desired.address}: missing in Orion; nothing to adopt")
            continue
        d = diff_registration(desired, current, ignore)
        if not d.changed:
            continue
        name = desired.source.file
        if name not in parsed:
            text = real[name].read_text(encoding="utf-8")
            out.texts[name] = (text, text)
            out.paths[name] = real[name]
            parsed[name] = load_documents(text.encode("utf-8"), name, spans=True)[0]
        doc = _find(parsed[name], "SleeveRegistration", desired.name)
        if doc is None:  # the tree changed since it was loaded
            out.left.append(f"{desired.address}: not adopted: its document is no longer in {name}  # {desired.source}")
            continue
        text = out.texts[name][0]
        result = _adopt_one(desired, current, d, doc, text)
        if isinstance(result, str):
            out.left.append(f"{desired.address}: not adopted: {result}  # {desired.source}")
            continue
        file_edits, lines = result
        edits.setdefault(name, []).extend(file_edits)
        out.adopted += [f"{desired.address}: {line}  # {desired.source}" for line in lines]
    for name, es in edits.items():
        text = out.texts[name][0]
        for e in sorted(es, key=lambda e: e.start, reverse=True):
            text = text[: e.start] + e.text + text[e.end :]
        out.texts[name] = (out.texts[name][0], text)
    for ins in manifests.instructions:
        if wanted(ins.address, ins.labels) and ins.ticket_id not in live.tickets:
            out.left.append(
                f"{ins.address}: missing at SEI; not adopted (a ticket missing at SEI is not a change of "
                "mind: apply sends it, or remove it from the manifest)  # " + str(ins.source)
            )
    return out


def _adopt_one(desired, current: dict, d, doc: Document, text: str):
    """(edits, lines for people) for one registration, or why it is left as it is."""
    spec = doc.data["spec"]
    own_sleeves = "accountSleeves" in spec
    pairs, _, _ = match_sleeves(desired, current)
    # the declared state after adoption, checked with validate's own rules before anything is written
    fields = dict(desired.fields)
    for f in d.changed_fields:
        fields[f] = current.get(f)
    sleeves: list[dict] = []
    kept_index: list[int] = []  # the declared sleeves still live, by their index in the manifest
    for i, (_, _, ls) in enumerate(pairs):
        if ls is None:  # declared, gone from live: adopting drops it
            continue
        s = dict(desired.sleeves[i].fields)
        for f in d.changed_sleeves.get(ls.get("accountId"), ()):
            s[f] = ls.get(f)
        sleeves.append(s)
        kept_index.append(i)
    added = [registration_manifest({**current, "accountSleeves": [s]})["spec"]["accountSleeves"][0] for s in d.removed]
    new_sleeves = sleeves + added
    problems = list(iter_registration_problems(fields, new_sleeves, complete=False))
    if problems:
        return problems[0][1] + " (live state breaks a rule validate enforces; fix it in Orion or apply the manifest)"
    edits: list[Edit] = []
    lines: list[str] = []
    indent = " " * (doc.positions[("spec", next(iter(spec)))][1] - 1)
    spec_end = (
        _line_end(text, doc.spans[("spec",)][1] - 1)
        if text[doc.spans[("spec",)][1] - 1 : doc.spans[("spec",)][1]] != "\n"
        else doc.spans[("spec",)][1]
    )
    appended: list[str] = []
    for f in d.changed_fields:
        value = current.get(f)
        if isinstance(value, (dict, list)):
            return f"{f} is a structured value; adopt it by hand"
        if f in spec:
            start, end, style = doc.spans[("spec", f)]
            edits.append(Edit(start, end, _scalar(value, style)))
            lines.append(f"{f}: {terminal(_scalar(spec[f]))} → {terminal(_scalar(value))}")
        else:  # from the template: an override here, never an edit of the shared template
            appended.append(f"{indent}{f}: {_scalar(value)}\n")
            lines.append(
                f"{f}: {terminal(_scalar(desired.fields.get(f)))} → {terminal(_scalar(value))} (an override: the "
                f"template {desired.template} is shared and stays as it is)"
            )
    if not own_sleeves and (d.changed_sleeves or d.new_sleeves or d.removed):
        block = [f"{indent}accountSleeves:   # adopted from live state; replaces the template's sleeves\n"]
        block += [f"{indent}  - {_flow(s)}\n" for s in new_sleeves]
        appended += block
        lines.append(
            f"accountSleeves: the template {desired.template}'s sleeves, adopted from live, declared here as "
            "an override (the template stays as it is)"
        )
    elif own_sleeves:
        for i in kept_index:
            ls = pairs[i][2]
            assert ls is not None  # kept: still live
            for f in d.changed_sleeves.get(ls.get("accountId"), ()):
                path = ("spec", "accountSleeves", i, f)
                if path not in doc.spans:
                    return f"accountSleeves[{i}].{f} is not declared as a plain value; adopt it by hand"
                start, end, style = doc.spans[path]
                edits.append(Edit(start, end, _scalar(ls.get(f), style)))
                lines.append(
                    f"accountSleeves[{pairs[i][0]}].{f}: {terminal(_scalar(desired.sleeves[i].fields.get(f)))} "
                    f"→ {terminal(_scalar(ls.get(f)))}"
                )
        for i, (label, _, ls) in enumerate(pairs):
            if ls is not None:
                continue
            start, end, _ = doc.spans[("spec", "accountSleeves", i)]
            first, last = _line_start(text, start), _line_end(text, end - 1)
            if text[first:start].strip() not in ("-", "") or text[end:last].strip():
                return f"the sleeve {label} shares its lines with other content; remove it by hand"
            edits.append(Edit(first, last, ""))
            lines.append(f"accountSleeves[{label}]: removed (gone from live)")
        if added:
            items = [k for k in doc.spans if k[:2] == ("spec", "accountSleeves") and len(k) == 3]
            last_item = max(items, key=lambda k: k[2]) if items else None
            if last_item is None:
                return "accountSleeves is empty; adopt the new sleeves by hand"
            start, end, style = doc.spans[last_item]
            dash = text.rfind("-", _line_start(text, start), start)
            prefix = " " * (dash - _line_start(text, start)) if dash >= 0 else " " * (doc.positions[last_item][1] - 3)
            at = _line_end(text, end - 1)
            body = "".join(f"{prefix}- {_flow(s)}\n" for s in added)
            edits.append(Edit(at, at, body))
            lines += [
                f"accountSleeves[{s.get('sleeveType')}, model {s.get('modelAggId')}]: added (live, not declared)"
                for s in added
            ]
    if appended:
        edits.append(Edit(spec_end, spec_end, "".join(appended)))
    return edits, lines


def write_adoption(adoption: Adoption) -> list[str]:
    """Replace each changed file atomically, keeping its mode; returns the files written."""
    from reconciler.files import write_private

    written = []
    for name, (old, new) in sorted(adoption.texts.items()):
        if old == new:
            continue
        path = adoption.paths[name]
        write_private(path, new, mode=os.stat(path).st_mode & 0o777)
        written.append(name)
    return written
