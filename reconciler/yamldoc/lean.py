"""The lean builder: a clean document's values, built without recording anything, and positions
looked up in its node tree afterwards, only when a message or a Source asks for one.

Recording a position and the raw text for every value was half of a parsing worker's time, and nearly
every manifest is clean; a document this module is unsure of is built again by builder.py.
"""

from __future__ import annotations

import math
from sys import intern
from typing import Any

import yaml

from reconciler.yamldoc.builder import CANONICAL_BOOL, CONSTRUCT, MAX_DEPTH, PLAIN_INT, TAG

__all__ = ["Unusual", "build_lean", "node_at", "positions_of"]


class Unusual(Exception):
    """Raised by build_lean on anything builder.py must look at: it may need a diagnostic."""


_MAP, _SEQ, _STR, _INT, _NULL, _BOOL, _FLOAT, _MERGE = (
    TAG + t for t in ("map", "seq", "str", "int", "null", "bool", "float", "merge")
)
_TRUE = frozenset({"true", "True", "TRUE"})


def build_lean(node: yaml.Node, depth: int) -> Any:
    """The values of a clean document. Only what builder.py would accept silently is accepted here
    (plain-tagged containers, unique printable-ASCII keys, printable-ASCII text, canonical booleans,
    plain decimal integers, finite floats, null); anything else raises Unusual, so every diagnostic
    still comes from builder.py. Aliases never reach here: load_documents refuses them first."""
    if depth > MAX_DEPTH:
        raise Unusual
    cls = node.__class__
    if cls is yaml.ScalarNode:
        tag, value = node.tag, node.value
        if tag == _STR:
            if value.isascii() and value.isprintable():
                return value
        elif tag == _INT:
            if PLAIN_INT.match(value):
                return int(value)
        elif tag == _NULL:
            return None
        elif tag == _BOOL:
            if value in CANONICAL_BOOL:
                return value in _TRUE
        elif tag == _FLOAT:
            number = CONSTRUCT.construct_yaml_float(node)  # type: ignore[arg-type]  # a ScalarNode: cls is, above
            if math.isfinite(number):
                return number
        raise Unusual
    if cls is yaml.MappingNode and node.tag == _MAP:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.__class__ is not yaml.ScalarNode or key_node.tag == _MERGE:
                raise Unusual
            key = intern(key_node.value)  # shared by every document: a worker's results pickle 43% smaller
            if key in out or not (key.isascii() and key.isprintable()):
                raise Unusual
            out[key] = build_lean(value_node, depth + 1)
        return out
    if cls is yaml.SequenceNode and node.tag == _SEQ:
        return [build_lean(item, depth + 1) for item in node.value]
    raise Unusual


def node_at(node: yaml.Node, path: tuple, *, value: bool = False) -> tuple[yaml.Node, bool]:
    """Follow `path` in a lean-built node tree: (the node whose position `path` has, whether all of
    `path` was found). A mapping entry's position is its key's, as builder.py records it; with `value`,
    the entry's value node is returned instead (for its raw text)."""
    at = node
    for i, step in enumerate(path):
        if node.__class__ is yaml.MappingNode:
            for key_node, value_node in node.value:
                if key_node.value == step:
                    at = value_node if value and i == len(path) - 1 else key_node
                    node = value_node
                    break
            else:
                return at, False
        elif node.__class__ is yaml.SequenceNode and type(step) is int and 0 <= step < len(node.value):
            at = node = node.value[step]
        else:
            return at, False
    return at, True


def positions_of(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, tuple[int, int]]:
    """Every position of a lean-built node tree, as builder.py records them."""
    out = {} if out is None else out
    out.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if node.__class__ is yaml.MappingNode:
        for key_node, value_node in node.value:
            out[path + (key_node.value,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            positions_of(value_node, path + (key_node.value,), out)
    elif node.__class__ is yaml.SequenceNode:
        for i, item in enumerate(node.value):
            positions_of(item, path + (i,), out)
    return out
