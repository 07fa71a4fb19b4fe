"""The full builder: Python values from composed YAML nodes, each checked, with its position and raw text.

Every diagnostic the YAML stage gives comes from here. A clean document (nearly all of them) is built
by lean.py without recording anything; any document lean.py is unsure of is built again here.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import yaml

from reconciler.errors import Diagnostic
from reconciler.escaping import is_invisible, visible

if TYPE_CHECKING:
    from reconciler.yamldoc import Document

__all__ = ["CANONICAL_BOOL", "CONSTRUCT", "MAX_DEPTH", "PLAIN_INT", "TAG", "build_checked"]

# A manifest nests about 6 levels deep; 64 leaves room for nested billing objects while keeping the
# recursive walk far from Python's recursion limit.
MAX_DEPTH = 64
TAG = "tag:yaml.org,2002:"
CONSTRUCT = yaml.constructor.SafeConstructor()
PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)\Z")
CANONICAL_BOOL = frozenset({"true", "false", "True", "False", "TRUE", "FALSE"})

# Fields whose values are identifiers: a zero-width or bidi character there makes two different
# values look the same in every review, so it is refused (elsewhere it is shown escaped).
IDENTIFIER_KEYS = frozenset(
    {"name", "batchId", "ticker", "cusip", "strategyCode", "template", "sleeveType", "apiVersion", "kind", "side"}
)
_ALLOWED_CONTROLS = frozenset("\t\n\r")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def build_checked(doc: Document, node: yaml.Node, diags: list[Diagnostic], spans: bool = False) -> Any:
    """`node`'s value, recording positions (and spans) in `doc` and appending every problem to `diags`."""
    return _Builder(doc, diags, spans).build(node, (), 0)


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
            self.error(
                node,
                "YAML anchors and aliases are not allowed",
                "write the value out in full; use a SleeveTemplate or TradeBatch defaults to share fields",
            )
            return None
        self.seen.add(id(node))
        self.doc.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if self.spans:
            style = (
                node.style
                if isinstance(node, yaml.ScalarNode)
                else (
                    ("{" if isinstance(node, yaml.MappingNode) else "[") if getattr(node, "flow_style", False) else ""
                )
            )
            self.doc.spans[path] = (node.start_mark.index, node.end_mark.index, style or "")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != TAG + "seq":
                self.error(node, f"tag {node.tag} is not allowed", "remove the tag")
                return None
            out = []
            for i, item in enumerate(node.value):
                self.doc.positions[path + (i,)] = (item.start_mark.line + 1, item.start_mark.column + 1)
                out.append(self.build(item, path + (i,), depth + 1))
            return out
        assert isinstance(node, yaml.ScalarNode)  # a node is a mapping, a sequence or a scalar
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: tuple, depth: int) -> dict | None:
        if node.tag != TAG + "map":
            self.error(node, f"tag {node.tag} is not allowed", "remove the tag")
            return None
        out: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == TAG + "merge":
                self.error(
                    key_node,
                    "YAML merge keys (<<) are not allowed",
                    "write the fields out; use a SleeveTemplate to share them",
                )
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
                self.error(key_node, f"duplicate key '{key}' (first at line {first_seen[key]})", "remove one of them")
                continue
            first_seen[key] = line
            sub = path + (key,)
            self.doc.positions[sub] = (line, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, sub, depth + 1)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: tuple) -> Any:
        tag = node.tag[len(TAG) :] if node.tag.startswith(TAG) else node.tag
        self.doc.scalars[path] = (tag, node.value)
        try:
            if tag == "str":
                self._check_text(node, path)
                return node.value
            if tag == "null":
                return None
            if tag == "bool":
                if node.value not in CANONICAL_BOOL:
                    self.surprise(
                        node,
                        path,
                        f"'{node.value}' is read by YAML 1.1 as a boolean",
                        "write true or false for a flag, or quote it for text",
                    )
                return CONSTRUCT.construct_yaml_bool(node)
            if tag == "int":
                if not PLAIN_INT.match(node.value):
                    value = CONSTRUCT.construct_yaml_int(node)
                    self.surprise(
                        node,
                        path,
                        f"'{node.value}' is read by YAML 1.1 as the number {value}",
                        "write a plain decimal number, or quote it if it is an identifier",
                    )
                    return value
                return int(node.value)
            if tag == "float":
                number = CONSTRUCT.construct_yaml_float(node)
                if not math.isfinite(number):  # .nan, .inf, 1e400: no vendor field can hold them
                    self.error(node, f"'{node.value}' is not a finite number", "give a number", broken=False)
                return number
            if tag == "timestamp":
                return CONSTRUCT.construct_yaml_timestamp(node)
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
            self.error(
                node,
                f"'{visible(value, 80)}' contains the control character{'s' * (len(controls) > 1)} "
                f"{', '.join(f'U+{ord(c):04X}' for c in controls)}",
                "remove it",
                broken=False,
            )
            return
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        in_labels = len(path) >= 2 and path[0] == "metadata" and path[1] in ("labels",)
        bad = _invisible_in(value)
        if bad and (key in IDENTIFIER_KEYS or in_labels):
            self.error(
                node,
                f"{key}: '{visible(value, 80)}' contains {bad}",
                "retype the identifier; invisible characters make different values look the same",
                broken=False,
            )


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
