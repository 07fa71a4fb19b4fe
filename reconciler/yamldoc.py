"""Hardened YAML loading: bytes → Documents that remember where every value came from.

Why not `yaml.safe_load`: it silently follows aliases (billion-laughs), lets later duplicate keys win,
turns `NO` into False and `0123` into 83, and forgets line numbers. Here PyYAML (its C parser when
present) only *composes* nodes; we build the Python values ourselves, refusing what a manifest never
needs and recording each value's position and raw text for error messages.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

import yaml

from reconciler.errors import Diagnostic
from reconciler.escaping import is_invisible, visible

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "Document",
    "load_documents",
]

# A manifest nests about 6 levels deep; 64 leaves room for nested billing objects while keeping the
# recursive walk far from Python's recursion limit.
MAX_DEPTH = 64
# The largest real manifest is a trade batch of a few thousand instructions (~1 MiB); 4 MiB refuses
# accidents (a data dump saved as .yaml) before the parser spends memory on them.
MAX_FILE_BYTES = 4 * 1024 * 1024
# libyaml recurses per nesting level and crashes near 50,000 levels, so nesting is bounded *before*
# parsing: open brackets beyond this, or indentation wider than this, refuse the file.
PRESCAN_LIMIT = 1000

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVED: dict[tuple, str] = {}   # (plain scalar, implicit) → tag
_RESOLVED_LIMIT = 100_000
assert not _BaseLoader.yaml_path_resolvers  # resolve() below depends on the node kind and text alone


class _Loader(_BaseLoader):
    """The safe loader with its tag resolution memoised: PyYAML resolves every scalar in Python, by
    regular expressions, and the same keys and values ("sleeveType", "Normal sleeve", "30") recur in
    every file (a tenth of a parsing worker's time, profiled on 2,080 files; memoised, 8% less CPU)."""

    def resolve(self, kind, value, implicit):
        if kind is yaml.MappingNode:
            return self.DEFAULT_MAPPING_TAG
        if kind is yaml.SequenceNode:
            return self.DEFAULT_SEQUENCE_TAG
        if len(value) > 64:   # long text: not worth keeping
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_RESOLVED) < _RESOLVED_LIMIT:
                _RESOLVED[key] = tag
        return tag

_CONSTRUCT = yaml.constructor.SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)\Z")
_CANONICAL_BOOL = frozenset({"true", "false", "True", "False", "TRUE", "FALSE"})
_LEADING = re.compile(r"^[ \t]*(?:[-?:][ \t]+)*", re.M)

Path_ = tuple  # a path into a document: keys and list indexes

# Fields whose values are identifiers: a zero-width or bidi character there makes two different
# values look the same in every review, so it is refused (elsewhere it is shown escaped).
IDENTIFIER_KEYS = frozenset({"name", "batchId", "ticker", "cusip", "strategyCode", "template", "sleeveType",
                             "apiVersion", "kind", "side"})
_ALLOWED_CONTROLS = frozenset("\t\n\r")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class Document:
    """One YAML document of a manifest file, with positions for error messages."""

    file: str
    data: Any
    # path → (line, col), 1-based: the key's position for mapping entries, the item's for list items
    positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    # path → (tag, raw text) for scalars, so messages can quote what the author wrote
    scalars: dict[tuple, tuple[str, str]] = field(default_factory=dict)
    # set when a value could not be built (alias, tag, depth): schema errors would only repeat it
    broken: bool = False
    # YAML 1.1 surprises (`NO`, `0123`) by path; reported unless the schema explains the same path better
    surprises: dict[tuple, Diagnostic] = field(default_factory=dict)
    # values refused by the loader itself (NaN, control characters) that the schema cannot see
    value_errors: int = 0
    # path → (start, end, style) character offsets of each value node in the file's text, and a
    # scalar's quoting style ('"', "'", '' plain, '{' flow mapping, '[' flow sequence): what
    # `drift --adopt` needs to rewrite exactly one value and leave every other byte alone
    spans: dict[tuple, tuple[int, int, str]] = field(default_factory=dict)

    def pos(self, path: tuple) -> tuple[int, int]:
        """Position of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def diagnostic(self, path: tuple, message: str, hint: str = "") -> Diagnostic:
        line, col = self.pos(path)
        return Diagnostic(self.file, line, col, message, hint)


def load_documents(data: bytes, display: str, *, spans: bool = False) -> tuple[list[Document], list[Diagnostic]]:
    """Parse one file's bytes into Documents; never raises for bad input, returns Diagnostics.

    `spans` records each value's character span and style (what `drift --adopt` edits by); off by
    default, since every plan and validate parses every file and needs none of it."""
    if len(data) > MAX_FILE_BYTES:
        return [], [Diagnostic(display, 1, 1, f"file is {len(data):,} bytes, over the {MAX_FILE_BYTES:,}-byte limit",
                               "split it into several files")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        return [], [Diagnostic(display, line, col, "file is not valid UTF-8", "save it as UTF-8")]
    too_deep = _prescan_depth(text)
    if too_deep:
        return [], [Diagnostic(display, too_deep, 1, f"nesting deeper than {PRESCAN_LIMIT} levels",
                               "manifests nest a few levels; this is not a manifest")]
    aliases = _find_aliases(text, display)
    if aliases:
        return [], aliases
    docs: list[Document] = []
    diags: list[Diagnostic] = []
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = Document(display, None)
            builder = _Builder(doc, diags, spans)
            doc.data = builder.build(node, (), 0)
            docs.append(doc)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = e.problem or e.context or "cannot parse"
        diags.append(Diagnostic(display, line, col, f"YAML syntax error: {problem}", "fix the YAML syntax"))
    except yaml.reader.ReaderError as e:  # a character YAML refuses (NUL, other controls): at its real place
        pos = min(max(getattr(e, "position", 0) or 0, 0), len(text))
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        code = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "\0")
        diags.append(Diagnostic(display, line, col, f"the character U+{code:04X} is not allowed in YAML ({e.reason})",
                                "remove it"))
    except yaml.YAMLError as e:  # other unmarked errors
        diags.append(Diagnostic(display, 1, 1, f"YAML error: {visible(str(e).splitlines()[0], 200)}", "fix the YAML syntax"))
    finally:
        loader.dispose()
    return docs, diags


def _find_aliases(text: str, display: str) -> list[Diagnostic]:
    """Every alias, at the place it is used. Parsing events is cheap and only done if `*` appears."""
    if "*" not in text:
        return []
    found = []
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                m = event.start_mark
                found.append(Diagnostic(display, m.line + 1, m.column + 1, "YAML anchors and aliases are not allowed",
                                        "write the value out in full; use a SleeveTemplate or TradeBatch defaults to share fields"))
    except yaml.YAMLError:
        pass  # the composing pass reports syntax errors with their position
    return found


def _prescan_depth(text: str) -> int:
    """Return a line number if the text could nest beyond PRESCAN_LIMIT, else 0. Cheap for normal files."""
    opens = text.count("[") + text.count("{")
    if opens > PRESCAN_LIMIT:
        depth = 0
        line = 1
        quote = ""
        for ch in text:
            if ch == "\n":
                line += 1
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch in "[{":
                depth += 1
                if depth > PRESCAN_LIMIT:
                    return line
            elif ch in "]}":
                depth = max(0, depth - 1)
    if len(text) > PRESCAN_LIMIT:
        for m in _LEADING.finditer(text):
            if m.end() - m.start() > PRESCAN_LIMIT:
                return text.count("\n", 0, m.start()) + 1
    return 0


class _Builder:
    """Builds Python values from composed nodes, refusing what manifests never need."""

    def __init__(self, doc: Document, diags: list[Diagnostic], spans: bool = False):
        self.doc = doc
        self.diags = diags
        self.spans = spans
        self.seen: set[int] = set()

    def error(self, node: yaml.Node, message: str, hint: str, broken: bool = True) -> None:
        self.doc.broken = self.doc.broken or broken
        self.doc.value_errors += 1
        m = node.start_mark
        self.diags.append(Diagnostic(self.doc.file, m.line + 1, m.column + 1, message, hint))

    def surprise(self, node: yaml.Node, path: tuple, message: str, hint: str) -> None:
        m = node.start_mark
        self.doc.surprises[path] = Diagnostic(self.doc.file, m.line + 1, m.column + 1, message, hint)

    def build(self, node: yaml.Node, path: tuple, depth: int) -> Any:
        if depth > MAX_DEPTH:
            self.error(node, f"nesting deeper than {MAX_DEPTH} levels", "flatten the document")
            return None
        if id(node) in self.seen:
            self.error(node, "YAML anchors and aliases are not allowed",
                       "write the value out in full; use a SleeveTemplate or TradeBatch defaults to share fields")
            return None
        self.seen.add(id(node))
        self.doc.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if self.spans:
            style = node.style if isinstance(node, yaml.ScalarNode) else (
                ("{" if isinstance(node, yaml.MappingNode) else "[") if getattr(node, "flow_style", False) else "")
            self.doc.spans[path] = (node.start_mark.index, node.end_mark.index, style or "")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _TAG + "seq":
                self.error(node, f"tag {node.tag} is not allowed", "remove the tag")
                return None
            out = []
            for i, item in enumerate(node.value):
                self.doc.positions[path + (i,)] = (item.start_mark.line + 1, item.start_mark.column + 1)
                out.append(self.build(item, path + (i,), depth + 1))
            return out
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: tuple, depth: int) -> dict | None:
        if node.tag != _TAG + "map":
            self.error(node, f"tag {node.tag} is not allowed", "remove the tag")
            return None
        out: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self.error(key_node, "YAML merge keys (<<) are not allowed",
                           "write the fields out; use a SleeveTemplate to share them")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, "mapping keys must be plain text", "use a simple key")
                continue
            if id(key_node) in self.seen:
                self.error(key_node, "YAML anchors and aliases are not allowed", "write the key out in full")
                continue
            self.seen.add(id(key_node))
            key = key_node.value  # the raw text: `on:` stays "on", never True
            line = key_node.start_mark.line + 1
            bad = _invisible_in(key)
            if bad:
                self.error(key_node, f"the key '{visible(key, 80)}' contains {bad}", "retype the key", broken=False)
            if key in first_seen:
                self.error(key_node, f"duplicate key '{key}' (first at line {first_seen[key]})",
                           "remove one of them")
                continue
            first_seen[key] = line
            sub = path + (key,)
            self.doc.positions[sub] = (line, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, sub, depth + 1)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: tuple) -> Any:
        tag = node.tag[len(_TAG):] if node.tag.startswith(_TAG) else node.tag
        self.doc.scalars[path] = (tag, node.value)
        try:
            if tag == "str":
                self._check_text(node, path)
                return node.value
            if tag == "null":
                return None
            if tag == "bool":
                if node.value not in _CANONICAL_BOOL:
                    self.surprise(node, path, f"'{node.value}' is read by YAML 1.1 as a boolean",
                                  "write true or false for a flag, or quote it for text")
                return _CONSTRUCT.construct_yaml_bool(node)
            if tag == "int":
                if not _PLAIN_INT.match(node.value):
                    value = _CONSTRUCT.construct_yaml_int(node)
                    self.surprise(node, path, f"'{node.value}' is read by YAML 1.1 as the number {value}",
                                  "write a plain decimal number, or quote it if it is an identifier")
                    return value
                return int(node.value)
            if tag == "float":
                value = _CONSTRUCT.construct_yaml_float(node)
                if not math.isfinite(value):  # .nan, .inf, 1e400: no vendor field can hold them
                    self.error(node, f"'{node.value}' is not a finite number", "give a number", broken=False)
                return value
            if tag == "timestamp":
                return _CONSTRUCT.construct_yaml_timestamp(node)
        except (ValueError, TypeError, yaml.YAMLError):
            self.error(node, f"cannot read '{node.value}' as {tag}", "quote it")
            return None
        self.error(node, f"tag {node.tag} is not allowed", "remove the tag; manifests hold plain data")
        return None


    def _check_text(self, node: yaml.ScalarNode, path: tuple) -> None:
        value = node.value
        if value.isascii() and value.isprintable():
            return
        controls = sorted({c for c in value if unicode_control(c) and c not in _ALLOWED_CONTROLS})
        if controls:
            self.error(node, f"'{visible(value, 80)}' contains the control character{'s' * (len(controls) > 1)} "
                             f"{', '.join(f'U+{ord(c):04X}' for c in controls)}", "remove it", broken=False)
            return
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        in_labels = len(path) >= 2 and path[0] == "metadata" and path[1] in ("labels",)
        bad = _invisible_in(value)
        if bad and (key in IDENTIFIER_KEYS or in_labels):
            self.error(node, f"{key}: '{visible(value, 80)}' contains {bad}",
                       "retype the identifier; invisible characters make different values look the same",
                       broken=False)


def unicode_control(ch: str) -> bool:
    o = ord(ch)
    return o < 0x20 or 0x7F <= o < 0xA0


def _invisible_in(text: str) -> str:
    """'' or a description of the invisible characters (zero-width, bidi, controls) in `text`."""
    if text.isascii() and not _ASCII_CONTROL.search(text):
        return ""  # the usual case, settled by one C scan instead of a call per character
    found = sorted({c for c in text if is_invisible(c) and c not in _ALLOWED_CONTROLS})
    if not found:
        return ""
    return "the invisible character" + ("s " if len(found) > 1 else " ") + ", ".join(f"U+{ord(c):04X}" for c in found)


def iter_paths(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every (path, value) in a built document, depth first."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from iter_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_paths(v, path + (i,))
