"""DriftReport → one self-contained HTML page for auditors: the only module that imports jinja2.

No external assets: styles inline, charts as inline SVG (declared vs live targetAllocation per
sleeve of each drifted registration, 3 px per percentage point). Autoescaping is on: manifest and
vendor text never becomes markup, and `finalize` shows every control or invisible character in a
value (an ESC, a bidi override) as a visible escape and bounds vendor strings, before escaping.
"""

from __future__ import annotations

from importlib import resources

import jinja2
import markupsafe

from reconciler.escaping import visible
from reconciler.render.drift_report import drift_to_document

__all__ = ["BAR_PX_PER_PERCENT", "render_drift_html", "render_history_html"]

BAR_PX_PER_PERCENT = 3


def _finalize(value):
    # tojson's output is already safe Markup (JSON escapes every control character); other text is not
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return visible(value, 2000)
    return value


def _value(v) -> str:
    """A value as an auditor reads it: plain text, not a JSON cell ('—' where there is none)."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_value(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_value(x) for x in v)
    return str(v)


def _template(name: str) -> jinja2.Template:
    """A template of templates/, in the one environment every page shares: autoescaped, strict, and
    `finalize` making control and invisible characters visible."""
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, finalize=_finalize
    )
    env.filters["value"] = _value
    return env.from_string(resources.files("reconciler.render").joinpath(f"templates/{name}").read_text("utf-8"))


def render_drift_html(report) -> str:
    return _template("drift.html.j2").render(doc=drift_to_document(report), px=BAR_PX_PER_PERCENT)


def render_history_html(doc: dict) -> str:
    """The evidence pack's index (audit/evidence_pack.py builds `doc`); self-contained, autoescaped."""
    return _template("history.html.j2").render(doc=doc)
