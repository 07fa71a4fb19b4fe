"""One `apply` run from start to finish: lock, journal, recovery, the plan to apply, approval, Ctrl-C, report.

The CLI parses arguments and hands over its Output (console.Output: info, error, result, confirm,
progress); this module decides and orders. Nothing is written before every refusal has had its say:
a stale saved plan, conflicts, --max-changes and a missing approval all stop the run before the
first submission.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from reconciler.apply import Applier, ApplyResult, stale_reasons
from reconciler.config import Settings
from reconciler.errors import PlanBlockedError, PlanFileError
from reconciler.journal import Journal, WorkspaceLock
from reconciler.live import read_live_state
from reconciler.model import ManifestSet, Plan
from reconciler.plan import Targeting, build_plan, select
from reconciler.planfile import SavedPlan
from reconciler.render import render_plan_text
from reconciler.render.apply_report import apply_report, render_apply_text
from reconciler.session import open_session

__all__ = ["ApplyRequest", "run_apply"]


@dataclass(frozen=True)
class ApplyRequest:
    saved: SavedPlan | None
    targeting: Targeting
    auto_approve: bool = False
    max_changes: int | None = None
    on_stale: str = "fail"            # or "replan"
    report_file: str | None = None
    break_lock: bool = False
    sandbox: bool = False
    command: str = "reconciler apply"


def run_apply(request: ApplyRequest, manifests: ManifestSet, settings: Settings, out) -> int:
    if not request.saved and not request.auto_approve and not out.interactive:
        raise PlanBlockedError("no terminal to confirm on: pass --auto-approve, or apply a reviewed saved plan "
                               "(reconciler plan --out FILE, then reconciler apply FILE)")
    stop = threading.Event()
    lock = WorkspaceLock(settings.workspace / "lock", request.command)
    with open_session(settings, sandbox=request.sandbox) as session:
        lock.acquire(break_lock=request.break_lock)
        journal = Journal(settings.workspace / "journal.db")
        try:
            # recovery is rare and its batches may take long: plain lines say what it is waiting for
            applier = Applier(session.vendors, journal, settings, manifests, stop=stop,
                              progress=lambda kind, text: out.info(f"recovering: {text}"))
            notes, busy = applier.recover()
            for n in notes:
                out.info(f"recovered: {n}")
            plan, plan_id, reviewed = _plan_to_apply(request, manifests, settings, session.vendors, busy, out)
            _refuse_if_blocked(plan, request.max_changes)
            if not plan.submissions:
                out.info("No changes to apply.")
                return 0
            n_changes = len(plan.actionable())
            if not reviewed and not request.auto_approve and not out.confirm(
                    f"Apply {len(plan.submissions)} submissions ({n_changes} changes)?"):
                raise PlanBlockedError("not approved; nothing was written")
            result = _apply_with_ctrl_c(applier, journal, plan, plan_id, stop, out)
            result.recovered = notes
            out.result(render_apply_text(result))
            if request.report_file:
                report = apply_report(result, plan_id=plan_id, manifests_digest=manifests.digest)
                Path(request.report_file).write_text(json.dumps(report, indent=2))
                out.info(f"Apply report written to {request.report_file}.")
            return result.exit_code
        finally:
            journal.close()
            lock.release()


def _plan_to_apply(request: ApplyRequest, manifests: ManifestSet, settings: Settings, vendors, busy: set[str],
                   out) -> tuple[Plan, str, bool]:
    """(the plan, its id, whether a human already reviewed it): the saved plan if still fresh, else a new one."""
    saved = request.saved
    if saved is not None:
        touched = {c.address for c in saved.plan.changes}
        live = read_live_state(vendors, [r for r in manifests.registrations if r.address in touched],
                               [i for i in manifests.instructions if i.address in touched], settings)
        reasons = stale_reasons(saved.plan, live, expected_digest=saved.manifests_digest, digest=manifests.digest,
                                expired=saved.expired(), expires_at=saved.expires_at)
        reasons += [f"{a}: a batch from an earlier run is still processing it" for a in sorted(busy) if a in touched]
        if not reasons:
            return saved.plan, saved.plan_id, True
        listed = "\n".join(f"  {r}" for r in reasons)
        if request.on_stale != "replan":
            raise PlanFileError(f"the saved plan is stale, so nothing was written:\n{listed}\nMake a new plan and review it.")
        out.info(f"The saved plan is stale, so it is not applied; planning afresh (--on-stale replan):\n{listed}")
        if not request.auto_approve and not out.interactive:
            raise PlanBlockedError("a fresh plan needs approval: pass --auto-approve, or run on a terminal")
    t = request.targeting
    targeting = Targeting(t.targets, t.excludes + tuple(sorted(busy)), t.selectors)
    regs, instrs = select(manifests, targeting)
    live = read_live_state(vendors, regs, instrs, settings)
    plan = build_plan(manifests, live, targeting=targeting, batch_size=settings.batch_size, ignore=settings.ignore)
    out.result(render_plan_text(plan))
    return plan, "inline-" + manifests.digest[:12], False


def _refuse_if_blocked(plan: Plan, max_changes: int | None) -> None:
    if plan.conflicts:
        raise PlanBlockedError("conflicts block apply, so nothing was written: "
                               + ", ".join(c.address for c in plan.conflicts)
                               + " (make the manifests match SEI, or --exclude those addresses and plan again)")
    n_changes = len(plan.actionable())
    if max_changes is not None and n_changes > max_changes:
        raise PlanBlockedError(f"the plan has {n_changes} changes, more than --max-changes {max_changes}; "
                               "nothing was written")


def _apply_with_ctrl_c(applier: Applier, journal: Journal, plan: Plan, plan_id: str, stop: threading.Event,
                       out) -> ApplyResult:
    """First Ctrl-C: no new submissions, those in flight finish. Second: exit now (the journal is committed)."""

    def on_sigint(signum, frame):
        if stop.is_set():
            out.error("Second Ctrl-C: exiting now. The journal is consistent; rerun apply to resume.")
            os._exit(130)
        stop.set()
        out.error("Ctrl-C: no new submissions; waiting for those in flight (Ctrl-C again to exit now).")

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if in_main else None
    run_id = journal.begin_run(plan_id)
    try:
        with out.progress("apply", sum(len(s.items) for s in plan.submissions)) as bar:
            applier.progress = lambda kind, text: bar.advance(status=text) if kind == "item" else bar.note(text)
            result = applier.apply(plan, run_id)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    journal.finish_run(run_id, "converged" if result.exit_code == 0 else "incomplete")
    return result
