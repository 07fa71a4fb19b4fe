"""Guardrails declared as `kind: Policy`: limits on money and reach, change windows per API. Pure.

Each Policy has an enforcement level (Terraform Sentinel's three): `advisory` warns, `soft` refuses
unless overridden by name with a reason (recorded), `hard` refuses. `evaluate_policies` turns a plan
and the clock into results that plan shows, saved plans carry, and apply enforces before any write.
Windows are evaluated as of `now`: the real clock for apply, another moment only for `plan --now`
(what-if). An API with no window in a policy is always open under it. `enforce_policies` and
`window_guard` are what apply runs before any write and before each wave.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from reconciler.errors import PlanBlockedError
from reconciler.model import Action, Approvals, Plan, Policy, Window

__all__ = [
    "Enforcement",
    "PolicyResult",
    "enforce_policies",
    "evaluate_policies",
    "next_opening",
    "window_guard",
    "window_open",
]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class PolicyResult:
    policy: str
    rule: str
    enforcement: str
    passed: bool
    message: str
    addresses: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {
            "policy": self.policy,
            "rule": self.rule,
            "enforcement": self.enforcement,
            "passed": self.passed,
            "message": self.message,
            "addresses": list(self.addresses),
        }


def _bounds(w: Window, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    tz = ZoneInfo(w.timezone)
    h1, m1 = map(int, w.start.split(":"))
    start = dt.datetime.combine(day, dt.time(h1, m1), tz)
    if w.end == "24:00":
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), tz)
    else:
        h2, m2 = map(int, w.end.split(":"))
        end = dt.datetime.combine(day, dt.time(h2, m2), tz)
    return start, end


def window_open(w: Window, now: dt.datetime) -> dt.datetime | None:
    """When the window closes, if `now` is inside it; else None."""
    local = now.astimezone(ZoneInfo(w.timezone))
    if _DAYS[local.weekday()] not in w.days:
        return None
    start, end = _bounds(w, local.date())
    return end if start <= now < end else None


def next_opening(windows: tuple[Window, ...], now: dt.datetime) -> dt.datetime | None:
    best = None
    for w in windows:
        local = now.astimezone(ZoneInfo(w.timezone)).date()
        for offset in range(0, 8):
            day = local + dt.timedelta(days=offset)
            if _DAYS[day.weekday()] not in w.days:
                continue
            start, _ = _bounds(w, day)
            if start > now and (best is None or start < best):
                best = start
                break
    return best


def _when(moment: dt.datetime | None) -> str:
    """A moment as people read it in a message: to the second, with its offset."""
    return moment.isoformat(timespec="seconds") if moment is not None else "(never)"


def _money(x: float) -> str:
    return f"${x:,.2f}"


def evaluate_policies(
    plan: Plan, policies: tuple[Policy, ...], now: dt.datetime, approvals: Approvals | None = None
) -> tuple[PolicyResult, ...]:
    notional = {c.address: c.notional for c in plan.changes if c.action is Action.CREATE and c.payload}
    updates = [c for c in plan.changes if c.action is Action.UPDATE]
    writes_to = {s.api for s in plan.submissions}
    out: list[PolicyResult] = []
    for p in sorted(policies, key=lambda p: p.name):
        e = p.enforcement
        lim = p.limits
        if "maxTicketNotional" in lim:
            over = sorted((a for a, n in notional.items() if n > lim["maxTicketNotional"]), key=lambda a: -notional[a])
            msg = (
                ("every instruction within " + _money(lim["maxTicketNotional"]))
                if not over
                else "; ".join(
                    f"{a}: {_money(notional[a])}, over {_money(lim['maxTicketNotional'])} by "
                    f"{_money(notional[a] - lim['maxTicketNotional'])}"
                    for a in over[:20]
                )
            )
            out.append(PolicyResult(p.name, "maxTicketNotional", e, not over, msg, tuple(over)))
        if "maxPlanNotional" in lim:
            gross = sum(notional.values())
            ok = gross <= lim["maxPlanNotional"]
            msg = (
                f"gross notional {_money(gross)} "
                + ("within " if ok else "over ")
                + _money(lim["maxPlanNotional"])
                + ("" if ok else f" by {_money(gross - lim['maxPlanNotional'])}")
            )
            out.append(PolicyResult(p.name, "maxPlanNotional", e, ok, msg, () if ok else tuple(sorted(notional))))
        if "maxRegistrationsTouched" in lim:
            n = len(updates)
            ok = n <= lim["maxRegistrationsTouched"]
            out.append(
                PolicyResult(
                    p.name,
                    "maxRegistrationsTouched",
                    e,
                    ok,
                    f"{n} registration(s) touched, limit {lim['maxRegistrationsTouched']:g}",
                    () if ok else tuple(c.address for c in updates),
                )
            )
        if "maxSleeveRemovals" in lim:
            removing = [c for c in updates if c.removed_sleeves]
            n = sum(len(c.removed_sleeves) for c in removing)
            ok = n <= lim["maxSleeveRemovals"]
            out.append(
                PolicyResult(
                    p.name,
                    "maxSleeveRemovals",
                    e,
                    ok,
                    f"{n} sleeve removal(s), limit {lim['maxSleeveRemovals']:g}",
                    () if ok else tuple(c.address for c in removing),
                )
            )
        out += _approval_results(p, approvals)
        if plan.scope is not None:  # a partial plan: whole-plan limits see the change only
            whole = ("maxPlanNotional", "maxRegistrationsTouched", "maxSleeveRemovals")
            out = [
                replace(r, message=r.message + " (evaluated on this partial plan's resources only)")
                if r.policy == p.name and r.rule in whole and "partial" not in r.message
                else r
                for r in out
            ]
        for api in ("orion", "sei"):
            windows = tuple(w for w in p.windows if w.api == api)
            if not windows or api not in writes_to:
                continue
            closes = [c for c in (window_open(w, now) for w in windows) if c is not None]
            label = "Orion" if api == "orion" else "SEI"
            if closes:
                out.append(
                    PolicyResult(
                        p.name,
                        f"window:{api}",
                        e,
                        True,
                        f"{label} writes are inside a window until {_when(max(closes))}",
                    )
                )
            else:
                nxt = next_opening(windows, now)
                out.append(
                    PolicyResult(
                        p.name,
                        f"window:{api}",
                        e,
                        False,
                        f"{label} writes are outside every window at {_when(now)}; the next opens at {_when(nxt)}",
                        tuple(a for s in plan.submissions if s.api == api for a in s.items),
                    )
                )
    return tuple(out)


def _approval_results(p: Policy, approvals: Approvals | None) -> list[PolicyResult]:
    """requireApprovals and applierNotApprover, over the pull request's reviews (model.Approvals)."""
    out: list[PolicyResult] = []
    rules = p.approvals
    unknown = None
    if approvals is None or approvals.pull_request is None:
        unknown = "no pull request is known for this run (plan it in one, or set RECONCILER_PULL_REQUEST)"
    elif approvals.error:
        unknown = f"the approvals of pull request #{approvals.pull_request} could not be read: {approvals.error}"
    if "requireApprovals" in rules:
        need = int(rules["requireApprovals"])
        if unknown or approvals is None:
            out.append(PolicyResult(p.name, "requireApprovals", p.enforcement, False, f"{unknown}; {need} needed"))
        else:
            others = approvals.others()
            who = ", ".join(a.login for a in others) or "nobody"
            self_only = " (an approval by the author does not count)" if len(others) < len(approvals.approvals) else ""
            out.append(
                PolicyResult(
                    p.name,
                    "requireApprovals",
                    p.enforcement,
                    len(others) >= need,
                    f"pull request #{approvals.pull_request} has {len(others)} approval(s) on commit "
                    f"{(approvals.commit or '?')[:12]} from people other than its author {approvals.author} "
                    f"({who}); {need} needed{self_only}",
                )
            )
    if rules.get("applierNotApprover"):
        if approvals is None or approvals.applier is None:
            out.append(
                PolicyResult(
                    p.name,
                    "applierNotApprover",
                    p.enforcement,
                    True,
                    "checked at apply: whoever applies must not be one of the approvers",
                )
            )
        elif unknown:
            out.append(PolicyResult(p.name, "applierNotApprover", p.enforcement, False, unknown))
        else:
            own = approvals.applier in {a.login for a in approvals.approvals}
            out.append(
                PolicyResult(
                    p.name,
                    "applierNotApprover",
                    p.enforcement,
                    not own,
                    f"{approvals.applier} applies and approved this change"
                    if own
                    else f"{approvals.applier} applies and is not among the approvers",
                )
            )
    return out


@dataclass(frozen=True)
class Enforcement:
    overridden: list[str]  # soft policies that failed and are overridden by name (with a reason)
    warnings: list[str]  # advisory rules that failed


def enforce_policies(
    results: tuple[PolicyResult, ...], policies: tuple[Policy, ...], overrides: dict[str, str]
) -> Enforcement:
    """Before any write: a failed hard rule refuses; a failed soft rule refuses unless overridden by
    name (`overrides`: name → reason); advisory ones only warn."""
    names = {p.name for p in policies}
    unknown = [n for n in overrides if n not in names]
    if unknown:
        raise PlanBlockedError(
            f"--override-policy {', '.join(unknown)}: no such Policy in the manifests; nothing was written"
        )
    failed = [r for r in results if not r.passed]
    hard = [r for r in failed if r.enforcement == "hard"]
    soft = [r for r in failed if r.enforcement == "soft" and r.policy not in overrides]
    if hard or soft:
        lines = [f"  {r.policy} {r.rule} ({r.enforcement}): {r.message}" for r in hard + soft]
        hint = "; a soft rule can be overridden with --override-policy NAME --reason TEXT" if soft and not hard else ""
        raise PlanBlockedError("policies refuse this plan, so nothing was written:\n" + "\n".join(lines) + hint)
    return Enforcement(
        sorted({r.policy for r in failed if r.enforcement == "soft"}),
        [f"advisory policy {r.policy} {r.rule}: {r.message}" for r in failed if r.enforcement == "advisory"],
    )


def window_guard(
    policies: tuple[Policy, ...], overridden: set[str], clock: Callable[[], dt.datetime]
) -> Callable[[str], str | None]:
    """Why a wave to `api` may not start now (an enforced policy's windows are all shut), or None. Asked
    when each wave starts, by `clock`: the machine's real one in apply, an injected one in unit tests."""

    def guard(api: str) -> str | None:
        now = clock()
        for p in policies:
            windows = tuple(w for w in p.windows if w.api == api)
            if not windows or p.enforcement == "advisory" or p.name in overridden:
                continue
            if not any(window_open(w, now) for w in windows):
                return (
                    f"not sent: policy {p.name} allows {api} writes only inside its windows, and none is open at "
                    f"{_when(now)}; the next opens at {_when(next_opening(windows, now))}"
                )
        return None

    return guard
