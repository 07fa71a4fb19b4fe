"""Renderers: Plan (and later apply results and drift reports) → strings. They never print."""

from reconciler.render.document import plan_from_document, plan_to_document
from reconciler.render.markdown import render_plan_markdown
from reconciler.render.text import render_plan_text

__all__ = ["plan_from_document", "plan_to_document", "render_plan_markdown", "render_plan_text"]
