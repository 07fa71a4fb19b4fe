"""The plan: manifests and live state in, a frozen Plan of the minimal submissions out. Nothing is written.

targeting.py  which resources a plan covers (--target, --exclude, --selector)
diff.py       (desired, live) → field changes, declared fields only (the only deepdiff home)
builder.py    changes → Plan: payloads, balanced batches, fingerprints; pure
stream.py     what `plan` runs: manifests checked, read and diffed chunk by chunk, overlapped
stages.py     Plan → the stages apply runs; explain.py says them in words (one tuple for both)
document.py   Plan ⇄ JSON (the `--format json` contract, and what saved plans hold)
saved.py      saved plans on disk: atomic, 0600, encrypted where recipients are set, bound to a commit
receipt.py    a saved plan against the plan recomputed now: staleness, endpoints, request bodies
"""

from reconciler.plan.builder import PlanBuilder, build_plan, plan_summary
from reconciler.plan.targeting import Targeting, select

__all__ = ["PlanBuilder", "Targeting", "build_plan", "plan_summary", "select"]
