"""Renderers: Plan, stages, apply results and drift reports → strings. They never print.

The JSON form of a plan is not here: it is a contract, not a view (reconciler/plan/document.py)."""

from reconciler.render.markdown import render_plan_markdown
from reconciler.render.text import render_plan_text

__all__ = ["render_plan_markdown", "render_plan_text"]
