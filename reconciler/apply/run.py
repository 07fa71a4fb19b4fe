"""One `apply` run from start to finish: lock, journal, recovery, the plan to apply, approval, signals, report.

The CLI parses arguments and hands over its Output (console.Output: info, error, result, confirm,
progress); this module decides and orders. Nothing is written before every refusal has had its say:
an unwritable report path, a saved plan for other endpoints, a stale or edited saved plan, conflicts,
--max-changes and a missing approval all stop the run before the first submission.

SIGINT and SIGTERM (what CI sends on cancel) both drain: no new submissions, those in flight finish
and are journaled. A second one exits at once; the journal is consistent and the kernel frees the lock.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import islice

from reconciler.apply.evaluator import Evaluator
from reconciler.apply.heap import long_lived_heap
from reconciler.apply.recovery import Evidence
from reconciler.apply.trail import RunFactsForTrail, change_records, stopped_runs
from reconciler.apply.watch import Phases, Signals, reporter
from reconciler.config import Settings
from reconciler.config.environment import RunFacts, run_facts
from reconciler.console import Output
from reconciler.errors import PlanBlockedError, PlanFileError, StateBackendError
from reconciler.files import check_writable, write_private
from reconciler.manifests import ManifestStream
from reconciler.manifests.policy import enforce_policies, evaluate_policies, window_guard
from reconciler.model import Approvals, Plan
from reconciler.plan.desired import DesiredStore
from reconciler.plan.receipt import endpoint_problems, receipt_problems, stale_reasons
from reconciler.plan.saved import SavedPlan, binding_problems, current_binding, destination
from reconciler.plan.stages import Recover, build_stages
from reconciler.plan.stream import StreamedPlan, plan_stream
from reconciler.plan.targeting import Targeting, selection_line
from reconciler.render import render_plan_text
from reconciler.render.apply_report import apply_report, render_apply_text
from reconciler.state.backend import open_backend
from reconciler.state.claims import Claims
from reconciler.state.history import History
from reconciler.state.journal import Journal
from reconciler.state.lock import Lease
from reconciler.state.workspace import run_workspace
from reconciler.vendors.session import Session, open_session

__all__ = ["ApplyRequest", "run_apply"]


@dataclass(frozen=True)
class ApplyRequest:
    saved: SavedPlan | None
    targeting: Targeting
    paths: tuple[str, ...] = ("manifests",)
    auto_approve: bool = False
    max_changes: int | None = None
    on_stale: str = "fail"  # or "replan"
    report_file: str | None = None
    break_lock: bool = False
    sandbox: bool = False
    command: str = "reconciler apply"
    lock_timeout: float = 0.0
    allow_plaintext_plan: bool = False
    no_encrypt: bool = False
    overrides: tuple[tuple[str, str], ...] = ()  # (soft policy name, reason)
    facts: RunFacts = field(default_factory=run_facts)  # CI, the reviewed commit, who is applying
    approvals: Approvals | None = None  # the pull request's approvals, read at apply (github/approvals.py)


def run_apply(
    request: ApplyRequest,
    stream: ManifestStream,
    settings: Settings,
    out: Output,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> int:
    """Apply `request` to the manifests `stream` checks (started by the caller, before any thread: its
    parsing workers fork). Change windows are judged by `clock`, the machine's real clock: a unit test
    may pass another, a user never can (`--now` / RECONCILER_NOW are refused for apply by the CLI)."""
    if not request.saved and not request.auto_approve and not out.interactive:
        raise PlanBlockedError(
            "no terminal to confirm on: pass --auto-approve, or apply a reviewed saved plan "
            "(reconciler plan --out FILE, then reconciler apply FILE)"
        )
    if request.report_file:
        check_writable(request.report_file, "apply report")
    stop = threading.Event()
    with open_session(settings, sandbox=request.sandbox) as session:
        settings = session.settings
        out.info(session.environment_line)  # where this goes, before anything else
        if request.saved is not None:
            out.info(
                f"Saved plan {request.saved.plan_id}, made {request.saved.created_at:%Y-%m-%d %H:%M %Z}: "
                + destination(request.saved.endpoints)
            )
            _refuse_replay_or_plaintext(request, request.saved, settings, session)
            wrong = endpoint_problems(request.saved.endpoints, session.endpoints)
            if wrong:
                raise PlanFileError(
                    "the saved plan is for other endpoints, so nothing was written:\n"
                    + "\n".join(f"  {w}" for w in wrong)
                    + "\nMake a plan against these endpoints."
                )
        with run_workspace(request.paths, session.settings, sandbox=request.sandbox) as ws, Signals(stop, out):
            backend = open_backend(session.settings, ws, sandbox=request.sandbox, facts=request.facts)
            lock = backend.lock(request.command, waiting=out.info)
            if request.break_lock:
                out.info(
                    "--break-lock: the workspace lock lives as long as its holder (a process, or a database "
                    "session); a live holder is never broken, and a dead one has already released it"
                )
            lock.acquire(timeout=request.lock_timeout)
            try:
                journal = backend.journal()
                for notice in backend.notices:
                    out.info(notice)
                claims = backend.claims()
                history = backend.history()  # opened before any write: a history that cannot be kept stops the run
                assert history is not None  # a writer's history is created where there is none
                try:
                    with long_lived_heap():  # a saved plan's receipt, the results: kept for the run (apply/heap.py)
                        return _run_locked(request, stream, session, journal, claims, lock, stop, out, clock, history)
                finally:
                    history.close()
                    claims.close()
                    journal.close()
            finally:
                lock.release()


def _refuse_replay_or_plaintext(request: ApplyRequest, saved: SavedPlan, settings: Settings, session: Session) -> None:
    """Before anything else: a plaintext plan where plans must be encrypted, or a plan replayed from
    another commit or environment, is refused with zero writes."""
    ci = request.facts.ci
    if ci and settings.plan_recipients and not saved.sealed and not request.allow_plaintext_plan:
        raise PlanFileError(
            "the saved plan is not encrypted, although plan_recipients are configured: in CI only "
            "encrypted plans are applied (pass --allow-plaintext-plan to accept this one)"
        )
    current = {
        **current_binding(session.endpoints.get("environment"), request.facts, request.paths),
        "expected_commit": request.facts.expected_commit,
    }
    replay = binding_problems(saved.binding, current, ci=ci)
    if replay:
        raise PlanFileError(
            "the saved plan was made for something else, so nothing was written:\n"
            + "\n".join(f"  {r}" for r in replay)
        )


def _run_locked(
    request: ApplyRequest,
    stream: ManifestStream,
    session: Session,
    journal: Journal,
    claims: Claims,
    lock: Lease,
    stop: threading.Event,
    out: Output,
    clock: Callable[[], dt.datetime],
    history: History,
) -> int:
    settings = session.settings
    clocked = Phases()
    evidence = Evidence(  # before the manifests are read: a ticket in doubt is settled by presence alone
        session.vendors,
        journal,
        settings,
        {},
        progress=lambda kind, text: out.info(f"recovering: {text}") if kind == "state" else None,
        interrupted=stop.is_set,
    )
    recovered = evidence.recover()
    claims.settle(journal)  # what recovery settled, other workspaces may send
    later = RunFactsForTrail(0, "", request.facts, None, session.endpoints.get("environment"))
    for stopped, records in stopped_runs(journal, history, later):  # a killed run's sends, from its journal
        if _record_history(history, records, out):
            journal.finish_run(stopped, "stopped", "its change records were written by a later apply")
    clocked.lap("recover")
    for note in recovered.notes:
        out.info(f"recovered: {note}")
    for address, why in recovered.busy:
        out.info(f"in doubt: {address}: {why}")
    with DesiredStore() as desired:
        streamed, plan_id, reviewed = _plan_to_apply(request, stream, session, recovered, desired, out)
        clocked.lap("plan")
        plan = streamed.plan
        _refuse_if_blocked(plan, request.max_changes)
        plan = replace(plan, policy_results=evaluate_policies(plan, streamed.policies, clock(), request.approvals))
        enforcement = enforce_policies(plan.policy_results, streamed.policies, dict(request.overrides))
        for warning in enforcement.warnings:
            out.error(f"Warning: {warning}")
        overridden = enforcement.overridden
        stages = build_stages(plan, recovered, parallelism=settings.parallelism)
        if not plan.submissions and not recovered.busy:
            out.info("No changes to apply.")
            return 0
        if not reviewed:
            out.result(render_plan_text(plan, stages, each=not out.ci))
            if not request.auto_approve and not out.confirm(
                f"Apply {len(plan.submissions)} submissions ({len(plan.actionable())} changes)?"
            ):
                raise PlanBlockedError("not approved; nothing was written")
        overrides = _record_overrides(overridden, request, journal, out, clock)  # only once the run is approved
        lock.annotate(plan_digest=plan_id)
        run_id = journal.begin_run(plan_id)
        total = sum(len(s.items) for s in plan.submissions) + len(recovered.busy)
        with out.progress("apply", total) as bar:
            evaluator = Evaluator(
                session.vendors,
                journal,
                settings,
                desired,
                claims=claims,
                stop=stop,
                window_guard=window_guard(streamed.policies, set(overridden), clock),
                progress=reporter(bar),
            )
            clocked.lap("approval")
            result = evaluator.run(stages, run_id)
            clocked.lap("waves", evaluator.timings)
    if _targeting(request) != Targeting():
        declared = streamed.registrations + streamed.instructions
        result = replace(result, selected=streamed.selected, unchecked=declared - streamed.selected)
    journal.finish_run(run_id, "converged" if result.exit_code == 0 else "incomplete", result.error)
    trail = RunFactsForTrail(
        run_id,
        plan_id,
        request.facts,
        current_binding(None, request.facts, request.paths)["commit"],
        session.endpoints.get("environment"),
        [r.as_dict() for r in plan.policy_results],
        overrides,
        request.approvals.as_list() if request.approvals is not None else (),
    )
    recorded = _record_history(history, change_records(result, {c.address: c for c in plan.changes}, trail), out)
    clocked.lap("history")
    out.result(render_apply_text(result, each_applied=not out.ci))
    if request.report_file:
        report = apply_report(result, plan_id=plan_id, manifests_digest=streamed.digest, endpoints=session.endpoints)
        report["policy"] = {"results": [r.as_dict() for r in plan.policy_results], "overrides": overrides}
        from reconciler.sealing import for_upload

        data, sealed = for_upload(
            (json.dumps(report, indent=2, allow_nan=False) + "\n").encode(),
            () if request.no_encrypt else settings.plan_recipients,
        )
        write_private(request.report_file, data)
        out.info(f"Apply report written to {request.report_file}{' (encrypted)' if sealed else ''}.")
    if request.facts.stats:
        out.info(clocked.line(journal))
    if not recorded and result.exit_code == 0:
        return 1
    if result.error:
        out.error(f"Error: apply stopped early ({result.error}); every item is listed above with what is known of it")
    return result.exit_code


def _record_history(history: History, records: Iterable[dict], out: Output) -> bool:
    """Append the run's change records to the audit trail, 2,000 to a transaction (memory stays flat at
    100,000 items); an auditor misses what is not there, so a failure is an error (exit 1 where the run
    converged), naming what to do."""
    written, head = 0, ""
    try:
        pending = iter(records)
        while chunk := list(islice(pending, 2000)):
            sealed = history.append(chunk)
            written, head = written + len(sealed), sealed[-1]["hash"]
    except StateBackendError as e:
        out.error(
            f"Error: change records of this run after the first {written} were not written to the history ({e}); "
            "the apply report (--report) holds every item: keep it with your change evidence"
        )
        return False
    if written:
        out.info(f"History: {written} change record(s) written; head {head[:16]}…")
    return True


def _plan_to_apply(
    request: ApplyRequest,
    stream: ManifestStream,
    session: Session,
    recovered: Recover,
    desired: DesiredStore,
    out: Output,
) -> tuple[StreamedPlan, str, bool]:
    """(the plan to run, its id, whether a human reviewed exactly it). The plan is streamed as `plan`
    streams it, keeping no registration bodies; what apply needs later goes to `desired`. A saved plan is
    a receipt: the plan is computed afresh and must send what the receipt shows."""
    targeting = _targeting(request)
    busy = frozenset(recovered.busy_addresses)  # in doubt: kept out, and confirmed at the end
    saved = request.saved
    streamed = plan_stream(
        request.paths,
        session.vendors,
        session.settings,
        targeting=targeting,
        leave_out=busy,
        stream=stream,
        payloads=False,
        store=desired,
        batch_size=saved.batch_size if saved is not None else None,
    )
    for w in streamed.warnings:
        out.error(f"Warning: {w}")
    line = selection_line(targeting, streamed.selected, streamed.registrations + streamed.instructions)
    if line:
        out.info(line)
    inline = "inline-" + streamed.digest[:12]
    if saved is None:
        return streamed, inline, False
    reasons = stale_reasons(
        saved.plan,
        streamed.plan,
        expected_digest=saved.manifests_digest,
        digest=streamed.digest,
        expired=saved.expired(),
        expires_at=saved.expires_at,
        in_doubt=busy,
        read=lambda ids: session.vendors.orion.list_with_sleeves(ids),
    )
    if not reasons:
        reasons += receipt_problems(saved.plan, streamed.plan)
    if not reasons:
        return streamed, saved.plan_id, True
    listed = "\n".join(f"  {r}" for r in reasons)
    if request.on_stale != "replan":
        raise PlanFileError(
            f"the saved plan is stale, so nothing was written:\n{listed}\nMake a new plan and review it."
        )
    out.info(f"The saved plan is stale, so it is not applied; planning afresh (--on-stale replan):\n{listed}")
    if not request.auto_approve and not out.interactive:
        raise PlanBlockedError("a fresh plan needs approval: pass --auto-approve, or run on a terminal")
    return streamed, inline, False


def _record_overrides(
    names: list[str], request: ApplyRequest, journal: Journal, out: Output, clock: Callable[[], dt.datetime]
) -> list[dict]:
    """Who overrode which soft policy, when and why: into the journal, and back for the apply report."""
    overridden = {n: why for n, why in request.overrides}
    who = request.facts.operator
    records = []
    for name in names:
        journal.record_override(name, overridden[name], who)
        records.append(
            {"policy": name, "who": who, "when": clock().isoformat(timespec="seconds"), "reason": overridden[name]}
        )
        out.error(f"Warning: soft policy {name} is overridden by {who}: {overridden[name]} (recorded)")
    return records


def _targeting(request: ApplyRequest) -> Targeting:
    """The user's selection: the saved plan's, else the flags'."""
    if request.saved is None:
        return request.targeting
    t = request.saved.targeting
    return Targeting(
        tuple(t.get("targets", ())), tuple(t.get("excludes", ())), tuple(tuple(kv) for kv in t.get("selectors", ()))
    )


def _refuse_if_blocked(plan: Plan, max_changes: int | None) -> None:
    if plan.conflicts:
        raise PlanBlockedError(
            "conflicts block apply, so nothing was written: "
            + ", ".join(c.address for c in plan.conflicts)
            + " (make the manifests match SEI, or --exclude those addresses and plan again)"
        )
    n_changes = len(plan.actionable())
    if max_changes is not None and n_changes > max_changes:
        raise PlanBlockedError(
            f"the plan has {n_changes} changes, more than --max-changes {max_changes}; nothing was written"
        )
