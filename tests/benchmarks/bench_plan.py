"""The plan at scale, against the floor, in one run on the same data (SPEC.md §8).

    .venv/bin/python -m tests.benchmarks.bench_plan                     # the curve: 10k, 30k, 100k
    .venv/bin/python -m tests.benchmarks.bench_plan --registrations 10000  # one size (instructions 2×)

For each size (N registrations, 2N instructions, 1% drift; four registrations in five on one of 5 shared
templates, tickets of 0–2 orders: estate.py `varied`, as a desk's data looks; `--uniform` for the old data):
- floor: parse every manifest with PyYAML's C loader + fetch the same live state from the sandbox as
  raw JSON (the bulk read in 500-id chunks, 4 at a time, then SEI's ticket pages), one after the other;
- validate and plan: the real CLI in a fresh process each, wall time and peak RSS;
- `--rounds` times the floor then plan, back to back (a shared machine's speed drifts by a third within
  minutes; each round's ratio compares neighbours in time), and the table takes the best of each;
- the sandbox's request count for the plan, and the plan's deepdiff calls (RECONCILER_STATS).
The sandbox runs as `reconciler sandbox` in its own process, as a vendor would.

Peak RSS is the largest process of the command's tree (os.wait4). The commands are started by a small
launcher process begun before any data exists: a child forked from this (large) process would start
with this process's pages counted as its own high-water mark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml

from reconciler.manifests.tree import iter_manifest_files
from tests.benchmarks.estate import FIRST_ID, template_yaml, write_estate

TOKENS = {"ORION_TOKEN": "bench-orion", "SEI_TOKEN": "bench-sei", "SEI_APP_KEY": "bench-key"}
CURVE = (10_000, 30_000, 100_000)

_LAUNCHER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    req = json.loads(line)
    with open(req["out"], "w") as out, open(req["err"], "w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(req["cmd"], env=req["env"], cwd=req["cwd"], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    print(json.dumps({"elapsed": time.perf_counter() - start, "maxrss_kib": usage.ru_maxrss,
                      "rc": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class Launcher:
    """Runs commands from a process that stays small, so their peak RSS is their own."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def run(self, cmd: list[str], env: dict, cwd: Path) -> tuple[float, int, subprocess.CompletedProcess]:
        """Wall time, peak RSS (KiB) and output of one command."""
        out, err = cwd / "cmd.out", cwd / "cmd.err"
        self.proc.stdin.write(
            json.dumps({"cmd": cmd, "env": env, "cwd": str(cwd), "out": str(out), "err": str(err)}) + "\n"
        )
        self.proc.stdin.flush()
        res = json.loads(self.proc.stdout.readline())
        return (
            res["elapsed"],
            res["maxrss_kib"],
            subprocess.CompletedProcess(cmd, res["rc"], out.read_text(), err.read_text()),
        )

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def floor(root: Path, base: str, ids: list[int]) -> tuple[float, float]:
    start = time.perf_counter()
    for path, _ in iter_manifest_files([str(root)])[0]:
        list(yaml.load_all(path.read_bytes(), Loader=yaml.CSafeLoader))
    parse = time.perf_counter() - start
    start = time.perf_counter()
    orion = {"Authorization": f"Session {TOKENS['ORION_TOKEN']}"}
    with httpx.Client(base_url=base, timeout=300) as client:
        chunks = [ids[i : i + 500] for i in range(0, len(ids), 500)]
        with ThreadPoolExecutor(4) as pool:
            list(
                pool.map(
                    lambda c: client.post(
                        "/api/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves", json=c, headers=orion
                    ).json(),
                    chunks,
                )
            )
        sei = {"Authorization": f"Bearer {TOKENS['SEI_TOKEN']}", "AppKey": TOKENS["SEI_APP_KEY"]}
        params = {"limit": 1000}
        while True:
            page = client.get("/v1/order/tradetickets", params=params, headers=sei).json()
            if not page["paging"]["next"]:
                break
            params["cursor"] = page["paging"]["next"]
    return parse, time.perf_counter() - start


def run_size(
    launcher: Launcher,
    work: Path,
    registrations: int,
    instructions: int,
    drift: float,
    rounds: int,
    varied: bool = True,
    changed: bool = False,
) -> dict:
    root = work / "manifests"
    t = time.perf_counter()
    state = write_estate(root, registrations, instructions, drift=drift, varied=varied)
    if changed:
        rare_template(root, registrations)
    (work / "state.json").write_text(json.dumps(state))
    ids = [r["registrationId"] for r in state["registrations"]]
    del state
    files = len(iter_manifest_files([str(root)])[0])
    shape = "4 in 5 on 5 templates, tickets of 0-2 orders" if varied else "uniform"
    print(
        f"data: {registrations:,} registrations ({shape}), "
        f"{instructions:,} instructions, drift {drift:.0%}, {files:,} files "
        f"(generated in {time.perf_counter() - t:.1f} s); {os.cpu_count()} cores",
        flush=True,
    )
    port = free_port()
    env = {
        **os.environ,
        **TOKENS,
        "ORION_BASE_URL": f"http://127.0.0.1:{port}/api",
        "SEI_BASE_URL": f"http://127.0.0.1:{port}",
        "RECONCILER_STATS": "1",
        "CI": "true",
        "RECONCILER_CACHE_DIR": str(work / "cache"),  # emptied before each cold plan
    }
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "--port", str(port), "--state", str(work / "state.json")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    cli = [sys.executable, "-m", "reconciler"]
    floors, plans = [], []
    try:
        for _ in range(3000):
            try:
                httpx.get(f"{base}/_sandbox/health")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        v_time, v_rss, v = launcher.run(cli + ["validate", str(root)], env, work)
        assert v.returncode == 0, v.stderr[-2000:]
        for n in range(rounds):  # floor then plan, back to back: each ratio compares neighbours in time
            parse, fetch = floor(root, base, ids)
            httpx.post(f"{base}/_sandbox/counters/reset")
            shutil.rmtree(work / "cache", ignore_errors=True)  # a cold plan: nothing checked before
            p_time, p_rss, p = launcher.run(cli + ["plan", str(root), "--detailed-exitcode"], env, work)
            assert p.returncode == 2, p.stderr[-2000:]
            floors.append((parse, fetch))
            plans.append((p_time, p_rss))
            print(
                f"round {n + 1}: floor {parse:6.2f} s + {fetch:6.2f} s = {parse + fetch:6.2f} s; plan {p_time:6.2f} s; "
                f"plan/floor = {p_time / (parse + fetch):.2f}",
                flush=True,
            )
        counts = httpx.get(f"{base}/_sandbox/counters").json()
        w_time, w_rss, w = launcher.run(cli + ["plan", str(root), "--detailed-exitcode"], env, work)
        assert w.returncode == 2, w.stderr[-2000:]
        print(
            f"warm plan (the cache the last plan filled): {w_time:6.2f} s, peak RSS {w_rss / 1024:5.0f} MiB", flush=True
        )
        partial = changed_rows(launcher, work, cli, env, registrations) if changed else None
    finally:
        sandbox.terminate()
        sandbox.wait()
    stats = next((ln for ln in p.stderr.splitlines() if ln.startswith("stats:")), "stats: (none)")
    summary = next((ln for ln in p.stdout.splitlines() if ln.startswith("Plan:")), "")
    parse, fetch = min(floors, key=sum)
    fl = parse + fetch
    p_time = min(t for t, _ in plans)
    p_rss = max(r for _, r in plans)
    parse_best = min(pa for pa, _ in floors)
    bulk = counts["requests"].get("POST /api/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves", 0)
    pages = sum(v for k, v in counts["requests"].items() if "tradetickets" in k)
    print(f"best of {rounds}:")
    print(f"floor:    parse {parse:6.2f} s + fetch {fetch:6.2f} s = {fl:6.2f} s")
    print(
        f"validate: {v_time:6.2f} s wall, peak RSS {v_rss / 1024:6.0f} MiB   validate/parse = {v_time / parse_best:.2f}"
    )
    print(f"plan:     {p_time:6.2f} s wall, peak RSS {p_rss / 1024:6.0f} MiB   plan/floor     = {p_time / fl:.2f}")
    print(f"          {stats}")
    print(
        f"          requests (last plan): {counts['total']} in all; {bulk} bulk reads (limit ⌈N/500⌉ = "
        f"{-(-registrations // 500)}), {pages} ticket pages"
    )
    print(f"          {summary}", flush=True)
    return {
        "registrations": registrations,
        "instructions": instructions,
        "parse": parse,
        "fetch": fetch,
        "floor": fl,
        "plan": p_time,
        "plan_rss": p_rss / 1024,
        "validate": v_time,
        "validate_rss": v_rss / 1024,
        "parse_best": parse_best,
        "requests": counts["total"],
        "bulk": bulk,
        "pages": pages,
        "ratios": [t / sum(f) for (t, _), f in zip(plans, floors)],
        "warm": (w_time, w_rss / 1024),
        "partial": partial,
    }


def rare_template(root: Path, registrations: int) -> None:
    """A sixth template, `model-rare` (model 1's sleeves), taken by 1% of the registrations (every
    hundredth, all former users of model 1): the row "one template used by 1% of the estate"."""
    (root / "templates" / "model-rare.yaml").write_text(template_yaml(1).replace("name: model-1", "name: model-rare"))
    for i in range(1, registrations, 100):
        path = root / "registrations" / f"o{i % 7}" / f"a{i % 41}" / f"reg-{FIRST_ID + i}.yaml"
        path.write_text(path.read_text().replace("template: model-1\n", "template: model-rare\n"))


def changed_rows(launcher: Launcher, work: Path, cli: list[str], env: dict, registrations: int) -> dict:
    """`plan --changed-since HEAD` after a change of 10 registration files, then of the 1% template."""
    git_env = {**env, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
               "GIT_COMMITTER_EMAIL": "b@x"}  # fmt: skip
    t = time.perf_counter()
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "estate"]):
        subprocess.run(["git", *args], cwd=work, env=git_env, check=True, capture_output=True)
    print(f"git: {registrations:,} registrations committed in {time.perf_counter() - t:.1f} s", flush=True)
    root = work / "manifests"
    rows = {}
    step = max(1, registrations // 10)
    edits = {
        "10 registration files": [
            root / "registrations" / f"o{i % 7}" / f"a{i % 41}" / f"reg-{FIRST_ID + i}.yaml"
            for i in range(0, registrations, step)
        ][:10],
        "one template used by 1% of the estate": [root / "templates" / "model-rare.yaml"],
    }
    for name, paths in edits.items():
        for path in paths:
            text = path.read_text()
            path.write_text(text.replace("toleranceUpper: 3", "toleranceUpper: 4") if "Template" in text else text
                            + "  autoRebalDay: 5\n")  # fmt: skip
        elapsed, rss, r = launcher.run(cli + ["plan", str(root), "--changed-since", "HEAD"], env, work)
        assert r.returncode == 0 and "Partial plan" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
        summary = next((ln for ln in r.stdout.splitlines() if ln.startswith("Plan:")), "")
        print(f"changed-since, {name}: {elapsed:6.2f} s, peak RSS {rss / 1024:5.0f} MiB; {summary}", flush=True)
        rows[name] = (elapsed, rss / 1024)
        subprocess.run(["git", "checkout", "-q", "--", "."], cwd=work, env=git_env, check=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--registrations",
        type=int,
        action="append",
        help="one size (repeatable); default the curve 10,000 / 30,000 / 100,000",
    )
    ap.add_argument("--drift", type=float, default=0.01)
    ap.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="floor + plan, back to back, this many times (default 2); the table takes the best of each",
    )
    ap.add_argument("--dir", type=Path, help="work folder (default: a new temporary one, removed after)")
    ap.add_argument("--uniform", action="store_true", help="the old data: no templates, one order per ticket")
    ap.add_argument(
        "--changed-since-rows",
        action="store_true",
        help="also plan --changed-since after a change of 10 registration files, and of a template 1%% take",
    )
    args = ap.parse_args()
    launcher = Launcher()  # first, while this process is small
    sizes = args.registrations or list(CURVE)
    rows = []
    try:
        for n in sizes:
            work = (args.dir or Path(tempfile.mkdtemp(prefix="bench-plan-"))) / f"n{n}"
            work.mkdir(parents=True, exist_ok=True)
            rows.append(
                run_size(launcher, work, n, 2 * n, args.drift, args.rounds, not args.uniform, args.changed_since_rows)
            )
            if not args.dir:
                shutil.rmtree(work.parent, ignore_errors=True)
            print()
    finally:
        launcher.close()
    print(f"Best of {args.rounds} round(s) each (a round: the floor, then plan, back to back):")
    print(
        "| estate | plan | floor (parse + fetch) | plan/floor | each round | peak RSS (plan) | validate/parse | "
        "peak RSS (validate) | requests |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['registrations']:,} registrations + {r['instructions']:,} instructions | {r['plan']:.1f} s | "
            f"{r['floor']:.1f} s ({r['parse']:.1f} + {r['fetch']:.1f}) | **{r['plan'] / r['floor']:.2f}** | "
            f"{' / '.join(f'{x:.2f}' for x in r['ratios'])} | {r['plan_rss']:,.0f} MiB | "
            f"{r['validate'] / r['parse_best']:.2f} | {r['validate_rss']:,.0f} MiB | "
            f"{r['bulk']} bulk reads + {r['pages']} ticket pages |"
        )
    for r in rows:
        if r["partial"]:
            print()
            print(f"| {r['registrations']:,} + {r['instructions']:,} | wall | peak RSS | ÷ cold full plan |")
            print("|---|---|---|---|")
            print(f"| cold full plan | {r['plan']:.1f} s | {r['plan_rss']:,.0f} MiB | 1.00 |")
            w_time, w_rss = r["warm"]
            print(f"| warm full plan (cache filled, nothing changed) | {w_time:.1f} s | {w_rss:,.0f} MiB | "
                  f"{w_time / r['plan']:.2f} |")  # fmt: skip
            for name, (elapsed, rss) in r["partial"].items():
                print(f"| --changed-since, {name} | {elapsed:.1f} s | {rss:,.0f} MiB | {elapsed / r['plan']:.2f} |")


if __name__ == "__main__":
    main()
