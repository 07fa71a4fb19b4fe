"""A realistic estate for tests and benchmarks: manifests on disk and the matching sandbox state.

N registrations of 6 Normal sleeves each (plus Orion's custodial, contribution and distribution
sleeves), one manifest file per registration in nested folders (office/advisor/), and M trade
instructions in TradeBatch files of ~50. A chosen fraction drifts: those registrations have two
targets swapped live, and those instructions are not yet at SEI.

`varied=True` makes the data look like a real desk's, where the project's own benchmark used to be
kinder than life: four registrations in five take their sleeves from one of 5 shared templates (in
templates/, which sorts after registrations/), and the tickets at SEI have 0–2 orders each (one or two
rows in SEI's list per ticket).
"""

from __future__ import annotations

import random
from pathlib import Path

from reconciler.manifests.rules import cusip_check_digit
from reconciler.sandbox.demo import make_registration, make_ticket_rows

MODELS = (36, 34, 30, 41, 45, 52)
TARGETS = (30, 20, 15, 15, 10, 10)
FIRST_ID = 200_000


def _cusip(rng: random.Random) -> str:
    body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(8))
    return body + str(cusip_check_digit(body))


TEMPLATES = 5


def template_targets(k: int) -> tuple[int, ...]:
    """Template k's targets: TARGETS turned by k places, so the five templates differ."""
    return TARGETS[k:] + TARGETS[:k]


def template_yaml(k: int) -> str:
    sleeves = "".join(
        f"    - {{sleeveType: Normal sleeve, modelAggId: {m}, targetAllocation: {t}, "
        f"contributionAllocation: {t}, distributionAllocation: {t}, toleranceLower: 1, toleranceUpper: 3}}\n"
        for m, t in zip(MODELS, template_targets(k))
    )
    return (
        f"apiVersion: reconciler/v1\nkind: SleeveTemplate\nmetadata: {{name: model-{k}}}\n"
        f"spec:\n  isActive: true\n  contributionAllocationMethod: Assigned\n"
        f"  distributionAllocationMethod: Assigned\n  accountSleeves:\n{sleeves}"
    )


def templated_yaml(i: int, rid: int, k: int) -> str:
    return (
        f"apiVersion: reconciler/v1\nkind: SleeveRegistration\n"
        f"metadata: {{name: reg-{rid}, labels: {{office: o{i % 7}, advisor: a{i % 41}}}}}\n"
        f"spec:\n  registrationId: {rid}\n  template: model-{k}\n"
    )


def registration_yaml(i: int, rid: int) -> str:
    sleeves = "".join(
        f"    - {{sleeveType: Normal sleeve, modelAggId: {m}, targetAllocation: {t}, "
        f"contributionAllocation: {t}, distributionAllocation: {t}, toleranceLower: 1, toleranceUpper: 3}}\n"
        for m, t in zip(MODELS, TARGETS)
    )
    return (
        f"apiVersion: reconciler/v1\nkind: SleeveRegistration\n"
        f"metadata: {{name: reg-{rid}, labels: {{office: o{i % 7}, advisor: a{i % 41}}}}}\n"
        f"spec:\n  registrationId: {rid}\n  isActive: true\n  contributionAllocationMethod: Assigned\n"
        f"  distributionAllocationMethod: Assigned\n  accountSleeves:\n{sleeves}"
    )


def live_registration(rid: int, drifted: bool, targets_of: tuple[int, ...] = TARGETS) -> dict:
    targets = list(targets_of)
    if drifted:
        targets[0], targets[1] = targets[1], targets[0]
    rows = [(m, t, t0, t0, None, (1, 3)) for m, t, t0 in zip(MODELS, targets, targets_of)]
    return make_registration(rid, rows, first_account=10_000_000 + (rid - FIRST_ID) * 10)


def write_estate(
    root: Path,
    registrations: int,
    instructions: int = 0,
    *,
    drift: float = 0.01,
    per_batch: int = 50,
    seed: int = 7,
    varied: bool = False,
) -> dict:
    """Write manifests under `root`; return the sandbox state ({registrations, tickets})."""
    rng = random.Random(seed)
    every = max(1, round(1 / drift)) if drift > 0 else 0
    live = []
    if varied:
        (root / "templates").mkdir(parents=True, exist_ok=True)
        for k in range(TEMPLATES):
            (root / "templates" / f"model-{k}.yaml").write_text(template_yaml(k))
    for i in range(registrations):
        rid = FIRST_ID + i
        folder = root / "registrations" / f"o{i % 7}" / f"a{i % 41}"
        folder.mkdir(parents=True, exist_ok=True)
        drifted = bool(every) and i % every == 0
        if varied and i % 5:
            k = i % TEMPLATES
            (folder / f"reg-{rid}.yaml").write_text(templated_yaml(i, rid, k))
            live.append(live_registration(rid, drifted, template_targets(k)))
        else:
            (folder / f"reg-{rid}.yaml").write_text(registration_yaml(i, rid))
            live.append(live_registration(rid, drifted))
    tickets = []
    ticket = 30_000_000
    for b in range(-(-instructions // per_batch) if instructions else 0):
        count = min(per_batch, instructions - b * per_batch)
        batch_id = f"BM-{b:05d}"
        lines = [
            f"apiVersion: reconciler/v1\nkind: TradeBatch\nmetadata: {{name: bm-{b:05d}}}\nspec:\n"
            f'  batchId: "{batch_id}"\n  strategyCode: LCG\n  affectsModel: true\n  instructions:\n'
        ]
        for k in range(count):
            ticket += 1
            fields = {
                "tradeTicketId": ticket,
                "masterOrderId": 5_000_000 + b,
                "side": rng.choice(("Buy", "Sell")),
                "ticker": f"T{ticket % 9973}",
                "cusip": _cusip(rng),
                "securityName": f"Security {ticket % 9973}",
                "target": rng.randint(1, 900),
                "orderGenerationPrice": round(rng.uniform(5, 500), 2),
            }
            lines.append(
                "    - {"
                + ", ".join(
                    f"{k}: {v!r}" if isinstance(v, str) and k == "cusip" else f"{k}: {v}" for k, v in fields.items()
                )
                + "}\n"
            )
            n = b * per_batch + k
            if not (every and n % every == 0):
                tickets += make_ticket_rows(
                    {"batchId": batch_id, "strategyCode": "LCG", "affectsModel": True, **fields},
                    count,
                    orders=rng.choice((0, 1, 2)) if varied else 1,
                )
        folder = root / "trades"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"bm-{b:05d}.yaml").write_text("".join(lines).replace("'", '"'))
    return {"registrations": live, "tickets": tickets}
