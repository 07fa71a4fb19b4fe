"""Apply at scale, against plan on the same tree and the vendor's own minimum, in one run (SPEC.md §8).

    .venv/bin/python -m tests.benchmarks.bench_apply                       # the curve and the fault row
    .venv/bin/python -m tests.benchmarks.bench_apply --registrations 20000 --no-fault-row
    .venv/bin/python -m tests.benchmarks.bench_apply --no-curve            # the fault row alone

The curve, for each size (N changed registrations + N/10 new trade instructions, one file each; four
registrations in five on one of 5 shared templates, as estate.py `varied` writes them):
- plan, apply --auto-approve, and apply of a saved plan (plan --out, then apply FILE, against the sandbox
  seeded afresh), each the real CLI in a fresh process: wall time and peak RSS;
- the vendor's minimum: its batches × their mean latency ÷ parallelism (the sandbox's batches take
  0.2–0.4 s, four at a time); apply's target is ≤ 1.5 × (plan + that);
- apply's phases (RECONCILER_STATS) and the number of lines it printed (CI=true).

The fault row: 2,000 changed registrations + 300 new instructions, batches of 1–2 s, default time-outs.
A serial fault-free apply, a parallel one (4), and a parallel one against a vendor that pushes back by
chance: 5% of all requests 429 with Retry-After, 3% of ticket POSTs answered 503 without Retry-After (not
stored, so in doubt until a settle window of read-backs shows it absent, then sent again), 3% stored with
the answer lost; once per seed (`--seeds`). A ticket in doubt on both of its sends (one run sends a ticket
at most twice; the second answer is looked for 10 s, not a second window) is left unknown, exit 3, as
designed: the rerun the output asks for finishes it. After it: every ticket stored once, and a plan with
no changes.

The sandbox runs as `reconciler sandbox --seed-state` in its own process, as a vendor would; peak RSS
is measured by a small launcher process (bench_plan.Launcher).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from reconciler.config import Settings
from tests.benchmarks.bench_plan import TOKENS, Launcher, free_port
from tests.benchmarks.estate import write_estate

CURVE = (10_000, 20_000, 100_000)
LATENCY = (0.2, 0.4)  # seconds per batch, drawn per batch
PARALLELISM = 4
FAULTS = "429=1@*%5,503=none@POST:/v1/order/tradetickets%3,drop@POST:/v1/order/tradetickets%3"
CLI = [sys.executable, "-m", "reconciler"]


class Sandbox:
    """`reconciler sandbox` in its own process, seeded from a state file, state kept in memory."""

    def __init__(self, state: Path, latency: tuple[float, float], faults: str | None = None, seed: int = 29) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = CLI + ["sandbox", "--port", str(self.port), "--seed-state", str(state)]
        cmd += ["--batch-latency", f"{latency[0]}-{latency[1]}", "--fault-seed", str(seed)]
        if faults:
            cmd += ["--faults", faults]
        self.proc = subprocess.Popen(
            cmd, env={**os.environ, **TOKENS}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(6000):
            try:
                httpx.get(f"{self.base}/_sandbox/health", timeout=5)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the sandbox did not start")

    def env(self, workspace: Path, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            **TOKENS,
            "ORION_BASE_URL": f"{self.base}/api",
            "SEI_BASE_URL": self.base,
            "RECONCILER_WORKSPACE": str(workspace),
            "RECONCILER_STATS": "1",
            "CI": "true",
            **extra,
        }
        for k in ("RECONCILER_SETTLE_WINDOW", "RECONCILER_READ_TIMEOUT", "RECONCILER_WRITE_TIMEOUT"):
            env.pop(k, None)  # default time-outs
        return env

    def writes(self) -> list[dict]:
        return httpx.get(f"{self.base}/_sandbox/writes", timeout=60).json()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stats(r: subprocess.CompletedProcess) -> str:
    return next((ln for ln in r.stderr.splitlines() if ln.startswith("stats:")), "stats: (none)")


def _check(r: subprocess.CompletedProcess, rc: int, what: str) -> None:
    if r.returncode != rc:
        raise SystemExit(f"{what} exited {r.returncode}, not {rc}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")


def run_size(launcher: Launcher, work: Path, n: int) -> dict:
    root = work / "manifests"
    t = time.perf_counter()
    state = write_estate(root, n, n // 10, drift=1.0, varied=True)
    (work / "state.json").write_text(json.dumps(state))
    del state
    print(f"data: {n:,} changed registrations + {n // 10:,} new instructions ({time.perf_counter() - t:.0f} s)")
    with Sandbox(work / "state.json", LATENCY) as sb:
        p_time, p_rss, p = launcher.run(CLI + ["plan", str(root), "--detailed-exitcode"], sb.env(work / "ws1"), work)
        _check(p, 2, "plan")
        a_time, a_rss, a = launcher.run(CLI + ["apply", str(root), "--auto-approve"], sb.env(work / "ws1"), work)
        _check(a, 0, "apply --auto-approve")
        batches = sum(1 for w in sb.writes() if w["api"] == "orion")
    print(f"  plan {p_time:7.1f} s  {p_rss / 1024:6.0f} MiB   {_stats(p)}")
    print(f"  apply {a_time:6.1f} s  {a_rss / 1024:6.0f} MiB   {_stats(a)}")
    lines = len((a.stdout + a.stderr).splitlines())
    with Sandbox(work / "state.json", LATENCY) as sb:  # seeded afresh: the same changes to make
        saved = work / "plan.json"
        _, _, ps = launcher.run(CLI + ["plan", str(root), "--out", str(saved)], sb.env(work / "ws2"), work)
        _check(ps, 0, "plan --out")
        s_time, s_rss, s = launcher.run(CLI + ["apply", str(saved)], sb.env(work / "ws2"), work)
        _check(s, 0, "apply FILE")
    print(f"  apply FILE {s_time:6.1f} s  {s_rss / 1024:6.0f} MiB   {_stats(s)}", flush=True)
    minimum = batches * (sum(LATENCY) / 2) / PARALLELISM
    return {
        "n": n,
        "tickets": n // 10,
        "plan": p_time,
        "plan_rss": p_rss / 1024,
        "apply": a_time,
        "apply_rss": a_rss / 1024,
        "saved": s_time,
        "saved_rss": s_rss / 1024,
        "batches": batches,
        "minimum": minimum,
        "lines": lines,
    }


def run_fault_row(
    launcher: Launcher, work: Path, seeds: tuple[int, ...], regs: int = 2_000, tickets: int = 300
) -> dict:
    root = work / "manifests"
    state = write_estate(root, regs, tickets, drift=1.0, varied=True)
    (work / "state.json").write_text(json.dumps(state))
    settle = Settings().settle
    print(f"fault row: {regs:,} changed registrations + {tickets} new instructions, batches 1–2 s, settle {settle:g} s")
    out: dict = {"settle": settle, "regs": regs, "tickets": tickets, "faulty": []}
    runs = [("serial", 1, None, 0), ("parallel", PARALLELISM, None, 0)] + [("faults", 4, FAULTS, n) for n in seeds]
    for name, parallelism, faults, seed in runs:
        with Sandbox(work / "state.json", (1.0, 2.0), faults, seed=seed) as sb:
            env = sb.env(work / f"ws-{name}-{seed}", RECONCILER_PARALLELISM=str(parallelism))
            elapsed, _, r = launcher.run(CLI + ["apply", str(root), "--auto-approve"], env, work)
            print(f"  {name:8} {elapsed:6.1f} s   {_stats(r)}", flush=True)
            if not faults:
                _check(r, 0, f"apply ({name})")
                out[name] = elapsed
                continue
            # a ticket whose answer is lost on both of its sends (3% x 3%) is left unknown: one run sends a
            # ticket at most twice. The rerun the output asks for reads it back first, then finishes it.
            twice = [ln for ln in r.stdout.splitlines() if "sent 2 times" in ln]
            if r.returncode != 0:
                assert r.returncode == 3 and twice, r.stdout[-3000:]
                rerun_time, _, again = launcher.run(CLI + ["apply", str(root), "--auto-approve"], env, work)
                _check(again, 0, "the rerun")
                print(f"  rerun    {rerun_time:6.1f} s   ({len(twice)} ticket(s) in doubt on both sends)", flush=True)
            httpx.delete(f"{sb.base}/_sandbox/faults", timeout=30)  # the checks read a calm vendor
            stored = Counter(w["tradeTicketId"] for w in sb.writes() if w["api"] == "sei")
            assert len(stored) == tickets and set(stored.values()) == {1}, stored.most_common(3)
            _, _, after = launcher.run(CLI + ["plan", str(root), "--detailed-exitcode"], env, work)
            _check(after, 0, "the plan after the faulty apply")
            posts = httpx.get(f"{sb.base}/_sandbox/counters", timeout=30).json()["requests"]
            out["faulty"].append(
                {
                    "seed": seed,
                    "time": elapsed,
                    "twice": len(twice),
                    "posts": posts.get("POST /v1/order/tradetickets", 0),
                }
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registrations", type=int, action="append", help="one size (repeatable); default the curve")
    ap.add_argument("--no-curve", action="store_true")
    ap.add_argument("--no-fault-row", action="store_true")
    ap.add_argument("--dir", type=Path, help="work folder (default: a new temporary one, removed after)")
    ap.add_argument("--seeds", default="1,2,3", help="the fault row's draws, one faulty apply each (default 1,2,3)")
    args = ap.parse_args()
    launcher = Launcher()  # first, while this process is small
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-apply-"))
    rows, fault = [], None
    try:
        for n in [] if args.no_curve else args.registrations or list(CURVE):
            work = base / f"n{n}"
            work.mkdir(parents=True, exist_ok=True)
            rows.append(run_size(launcher, work, n))
            if not args.dir:
                shutil.rmtree(work, ignore_errors=True)
        if not args.no_fault_row:
            work = base / "faults"
            work.mkdir(parents=True, exist_ok=True)
            fault = run_fault_row(launcher, work, tuple(int(x) for x in args.seeds.split(",")))
    finally:
        launcher.close()
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    print()
    if rows:
        print(
            "| estate | plan | vendor's minimum | apply | apply ÷ (plan + minimum) | apply FILE | "
            "peak RSS plan / apply / apply FILE | apply ÷ plan (RSS) | log lines |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            bound = r["plan"] + r["minimum"]
            print(
                f"| {r['n']:,} + {r['tickets']:,} new tickets | {r['plan']:.1f} s | {r['minimum']:.1f} s "
                f"({r['batches']} batches) | {r['apply']:.1f} s | **{r['apply'] / bound:.2f}** | "
                f"{r['saved']:.1f} s ({r['saved'] / bound:.2f}) | {r['plan_rss']:,.0f} / {r['apply_rss']:,.0f} / "
                f"{r['saved_rss']:,.0f} MiB | {max(r['apply_rss'], r['saved_rss']) / r['plan_rss']:.2f} | "
                f"{r['lines']} |"
            )
    if fault:
        print()
        print(
            "| fault row | serial, no faults | parallel 4, no faults | parallel 4, faults (seed) "
            "| (faults − settle) ÷ serial | tickets in doubt on both sends |"
        )
        print("|---|---|---|---|---|---|")
        for f in fault["faulty"]:
            over = f["time"] - fault["settle"]
            print(
                f"| {fault['regs']:,} + {fault['tickets']} tickets, settle {fault['settle']:g} s | "
                f"{fault['serial']:.1f} s | {fault['parallel']:.1f} s ({fault['parallel'] / fault['serial']:.2f}) | "
                f"{f['time']:.1f} s ({f['seed']}) | **{over / fault['serial']:.2f}** | {f['twice']} "
                f"({f['posts']} ticket POSTs, each ticket stored once) |"
            )


if __name__ == "__main__":
    main()
