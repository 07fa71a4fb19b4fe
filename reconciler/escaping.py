"""Making untrusted text safe to show: the one place that knows which characters are dangerous.

Strings from vendors, manifests and file names reach terminals, pull-request comments and HTML
pages. Each output format has one escaping function here, and every renderer interpolates through
it: `terminal()` for text (control and invisible characters shown as visible escapes, so an
``ESC[2J`` or a right-to-left override prints as ``\\x1b[2J`` / ``\\u202e``), `md_text()` and
`md_code()` for markdown (no live HTML, no @-mentions, code spans that backticks cannot break), and
`visible()` under HTML's autoescaping. `bounded()` caps any vendor string at a named limit.

Pure and dependency-free, at the bottom of the layers, so vendor clients and renderers alike can use it.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "VENDOR_TEXT_LIMIT",
    "bounded",
    "html_text",
    "is_invisible",
    "md_code",
    "md_fence",
    "md_text",
    "terminal",
    "visible",
]

# Vendor strings (messages, editors, ids) are shown up to this many characters: enough for any real
# message, small enough that a 2 MB answer cannot flood a terminal or a comment.
VENDOR_TEXT_LIMIT = 300

# Invisible or direction-changing characters that are not in category Cc/Cf but still hide text.
_EXTRA_INVISIBLE = frozenset("\u2028\u2029\u3164\u115f\u1160\uffa0")


def is_invisible(ch: str) -> bool:
    """Control (Cc), format (Cf: zero-width, bidi overrides), separators, private use, unassigned."""
    if ch in _EXTRA_INVISIBLE:
        return True
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp")


def _escape_char(ch: str) -> str:
    o = ord(ch)
    if o < 0x100:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{o:02x}")
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


_INVISIBLE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
    "\ue000-\uf8ff\U000e0000-\U000e0fff]"
)


def visible(text: object, limit: int | None = None) -> str:
    """`text` with every control or invisible character shown as an escape, cut at `limit` characters."""
    s = text if isinstance(text, str) else str(text)
    if limit is not None and len(s) > limit:
        s = s[:limit] + f"… ({len(s) - limit:,} more characters)"
    if _INVISIBLE_RE.search(s) or not s.isascii():
        s = "".join(_escape_char(c) if (c < " " or is_invisible(c)) else c for c in s)
    return s


def bounded(text: object, limit: int = VENDOR_TEXT_LIMIT) -> str:
    """A vendor string for any output: visible escapes, at most `limit` characters."""
    return visible(text, limit)


def terminal(text: object, limit: int | None = None) -> str:
    """One interpolated value for text output (terminal or log): nothing in it can move the cursor."""
    return visible(text, limit)


# Characters that start emphasis, links, images, tables or strike-through; `(` `#` `!` are inert
# once `[` and `]` are escaped, so plain prose stays readable in the comment's source.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_MENTION = re.compile(r"@(?=[A-Za-z0-9_-])")
_NO_MENTION = "@<!-- -->"


def md_text(text: object, limit: int | None = None) -> str:
    """A value for markdown prose: no HTML, no @-mention, no emphasis or link syntax, one line.

    `<`, `>` and `&` become entities. An `@` that starts a mention is followed by an empty HTML
    comment (`@<!-- -->team`): GitHub shows "@team" but links nobody. Backslashes and `&#64;` do not
    stop GitHub's mentions (they are found after rendering: cmark-gfm #181, openjdk/skara #1548).
    Emphasis, link and table punctuation is backslash-escaped.
    """
    s = _MD_SPECIAL.sub(r"\\\1", visible(text, limit))
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MENTION.sub(_NO_MENTION, s)


def html_text(text: object, limit: int | None = None) -> str:
    """A value inside raw HTML in markdown (e.g. a <summary>): escaped, no @-mention, visible escapes."""
    s = visible(text, limit)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("`", "&#96;")
    return _MENTION.sub(_NO_MENTION, s)


def md_code(text: object, limit: int | None = None) -> str:
    """A value as an inline code span that its own backticks cannot close, safe inside a table cell.

    Inside a code span GitHub renders HTML and mentions literally; the fence is one backtick longer
    than the longest run inside, and `|` is escaped so a table row stays one row.
    """
    s = visible(text, limit).replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def md_fence(body: str, info: str = "") -> str:
    """A fenced code block whose fence is longer than any backtick run in `body` (lines kept)."""
    lines = [visible(line) for line in body.split("\n")]
    text = "\n".join(lines)
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"
