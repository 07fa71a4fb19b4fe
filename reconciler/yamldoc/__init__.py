"""Hardened YAML loading: bytes → Documents that remember where every value came from.

Why not `yaml.safe_load`: it silently follows aliases (billion-laughs), lets later duplicate keys win,
turns `NO` into False and `0123` into 83, and forgets line numbers. Here PyYAML (its C parser when
present) only *composes* nodes; we build the Python values ourselves: lean.py for a clean document,
builder.py for any other, refusing what a manifest never needs with the position and raw text of each
value in the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from reconciler.errors import Diagnostic
from reconciler.escaping import visible
from reconciler.yamldoc.builder import MAX_DEPTH, TAG, build_checked
from reconciler.yamldoc.lean import Unusual, build_lean, node_at, positions_of

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "Document",
    "load_documents",
]

# The largest real manifest is a trade batch of a few thousand instructions (~1 MiB); 4 MiB refuses
# accidents (a data dump saved as .yaml) before the parser spends memory on them.
MAX_FILE_BYTES = 4 * 1024 * 1024
# libyaml recurses per nesting level and crashes near 50,000 levels, so nesting is bounded *before*
# parsing: open brackets beyond this, or indentation wider than this, refuse the file.
PRESCAN_LIMIT = 1000
_LEADING = re.compile(r"^[ \t]*(?:[-?:][ \t]+)*", re.M)
_LONG_LEAD = re.compile(rf"^[ \t?:-]{{{PRESCAN_LIMIT + 1}}}", re.M)  # what any _LEADING match that long starts with

if TYPE_CHECKING:
    _BaseLoader = yaml.SafeLoader
else:  # the C loader where libyaml is there (SPEC.md §1: "the C loader where present")
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_TAGS: dict[str, str] = {}  # plain scalar → tag
_PLAIN_TAGS_LIMIT = 100_000
_DEFAULT_TAGS = {
    yaml.ScalarNode: _BaseLoader.DEFAULT_SCALAR_TAG,
    yaml.SequenceNode: _BaseLoader.DEFAULT_SEQUENCE_TAG,
    yaml.MappingNode: _BaseLoader.DEFAULT_MAPPING_TAG,
}
assert not _BaseLoader.yaml_path_resolvers  # resolve() below depends on the node kind and text alone


class _Loader(_BaseLoader):
    """The safe loader with its tag resolution memoised: PyYAML resolves every scalar in Python, by
    regular expressions, and the same keys and values ("sleeveType", "Normal sleeve", "30") recur in
    every file (a tenth of a parsing worker's time, profiled on 2,080 files; memoised, 8% less CPU).
    Without path resolvers, a plain scalar's tag depends on its text alone, and every other node
    (quoted scalars, mappings, sequences) takes its kind's default tag."""

    def resolve(self, kind, value, implicit):
        if kind is not yaml.ScalarNode or not implicit[0]:
            return _DEFAULT_TAGS[kind]
        tag = _PLAIN_TAGS.get(value)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(value) <= 64 and len(_PLAIN_TAGS) < _PLAIN_TAGS_LIMIT:  # long text: not worth keeping
                _PLAIN_TAGS[value] = tag
        return tag


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
    # a clean document's composed root: positions and raw text are looked up in it only when a
    # message or a Source asks, instead of being recorded for every value (lean.py)
    node: yaml.Node | None = field(default=None, repr=False, compare=False)

    def pos(self, path: tuple) -> tuple[int, int]:
        """Position of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        if self.node is not None:
            found, _ = node_at(self.node, path)
            return found.start_mark.line + 1, found.start_mark.column + 1
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def scalar(self, path: tuple) -> tuple[str, str]:
        """(tag, raw text) of the scalar at `path`, or ("", "") if there is none."""
        if self.node is None:
            return self.scalars.get(tuple(path), ("", ""))
        node, complete = node_at(self.node, tuple(path), value=True)
        if not complete or node.__class__ is not yaml.ScalarNode:
            return "", ""
        return (node.tag[len(TAG) :] if node.tag.startswith(TAG) else node.tag), node.value

    def __getstate__(self) -> dict:
        """Shipped between processes with positions recorded, without its raw text or node tree."""
        state = dict(self.__dict__)
        if self.node is not None:
            state["positions"] = positions_of(self.node)
        state["node"], state["scalars"] = None, {}
        return state

    def diagnostic(self, path: tuple, message: str, hint: str = "") -> Diagnostic:
        line, col = self.pos(path)
        return Diagnostic(self.file, line, col, message, hint)


def load_documents(data: bytes, display: str, *, spans: bool = False) -> tuple[list[Document], list[Diagnostic]]:
    """Parse one file's bytes into Documents; never raises for bad input, returns Diagnostics.

    `spans` records each value's character span and style (what `drift --adopt` edits by); off by
    default, since every plan and validate parses every file and needs none of it."""
    if len(data) > MAX_FILE_BYTES:
        return [], [
            Diagnostic(
                display,
                1,
                1,
                f"file is {len(data):,} bytes, over the {MAX_FILE_BYTES:,}-byte limit",
                "split it into several files",
            )
        ]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        return [], [Diagnostic(display, line, col, "file is not valid UTF-8", "save it as UTF-8")]
    too_deep = _prescan_depth(text)
    if too_deep:
        return [], [
            Diagnostic(
                display,
                too_deep,
                1,
                f"nesting deeper than {PRESCAN_LIMIT} levels",
                "manifests nest a few levels; this is not a manifest",
            )
        ]
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
            try:
                if spans:  # only the full builder records spans (drift --adopt)
                    raise Unusual
                doc.data, doc.node = build_lean(node, 0), node
            except (Unusual, ValueError):  # the full builder says precisely what is wrong, if anything
                doc.data = build_checked(doc, node, diags, spans)
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
        diags.append(
            Diagnostic(
                display, line, col, f"the character U+{code:04X} is not allowed in YAML ({e.reason})", "remove it"
            )
        )
    except yaml.YAMLError as e:  # other unmarked errors
        diags.append(
            Diagnostic(display, 1, 1, f"YAML error: {visible(str(e).splitlines()[0], 200)}", "fix the YAML syntax")
        )
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
                found.append(
                    Diagnostic(
                        display,
                        m.line + 1 if m else 1,
                        m.column + 1 if m else 1,
                        "YAML anchors and aliases are not allowed",
                        "write the value out in full; use a SleeveTemplate or TradeBatch defaults to share fields",
                    )
                )
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
    if len(text) > PRESCAN_LIMIT and _LONG_LEAD.search(text):  # one C scan rules out nearly every file
        for m in _LEADING.finditer(text):
            if m.end() - m.start() > PRESCAN_LIMIT:
                return text.count("\n", 0, m.start()) + 1
    return 0
