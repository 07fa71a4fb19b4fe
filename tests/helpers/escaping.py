"""What the escaping layers promise, as checks tests share: no raw control characters for a terminal, no
live HTML or mention in markdown, and values that break each format."""

from __future__ import annotations

import re
import unicodedata

from markdown_it import MarkdownIt

__all__ = ["HOSTILE", "html_tags", "mentions", "raw_controls"]

# values that try to break out of each format
HOSTILE = [
    "\x1b[31mAAPL",
    "\x1b]0;owned\x07title",
    "x\x1b[2Jy",
    "\u202eevil\u200b",
    "</details><img src=x onerror=alert(1)>",
    "@org/team",
    "`code` ``` fence",
    "line\n✓ applied  SleeveRegistration/fake",
    "<script>alert(1)</script>",
]


def raw_controls(text: str) -> list[str]:
    """Characters that must never reach a terminal raw: controls but newline, and format (bidi, zero-width)."""
    return [c for c in text if (unicodedata.category(c) in ("Cc", "Cf") and c != "\n")]


def html_tags(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    tags = []
    for t in tokens:
        children = t.children or []
        for c in [t, *children]:
            if c.type in ("html_inline", "html_block"):
                tags += re.findall(r"<(/?[a-zA-Z]+|!--)", c.content)
    return tags


def mentions(markdown: str) -> list[str]:
    """@names GitHub would link: in text, not in code, not split by an HTML comment."""
    found = []
    for t in MarkdownIt("commonmark").enable("table").parse(markdown):
        for c in t.children or []:
            if c.type == "text":
                found += re.findall(r"(?<![\w`])@[A-Za-z0-9][\w-]*", c.content)
    return found
