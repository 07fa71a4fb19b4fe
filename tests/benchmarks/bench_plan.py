"""The plan at scale, against the floor, in one run on the same data (SPEC.md §8).

    .venv/bin/python -m tests.benchmarks.bench_plan [--registrations 10000] [--instructions 20000] [--drift 0.01]

- floor: parse every manifest with PyYAML's C loader + fetch the same live state from the sandbox as
  raw JSON (the bulk read in 500-id chunks, 4 at a time, then SEI's ticket pages);
- validate and plan: the real CLI in a fresh process each, wall time and peak RSS;
- the sandbox's request count for the plan, and the plan's deepdiff calls (RECONCILER_STATS).
The sandbox runs as `reconciler sandbox` in its own process, as a vendor would.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml

from reconciler.manifests.loader import iter_manifest_files
from tests.benchmarks.estate import write_estate

TOKENS = {"ORION_TOKEN": "bench-orion", "SEI_TOKEN": "bench-sei", "SEI_APP_KEY": "bench-key"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_process(cmd: list[str], env: dict, cwd: Path) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall time, peak RSS (KiB) of that one child (os.wait4 gives its own rusage), and its output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return elapsed, usage.ru_maxrss, subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


def floor(root: Path, base: str, ids: list[int]) -> tuple[float, float]:
    start = time.perf_counter()
    for path, _ in iter_manifest_files([str(root)])[0]:
        list(yaml.load_all(path.read_bytes(), Loader=yaml.CSafeLoader))
    parse = time.perf_counter() - start
    start = time.perf_counter()
    orion = {"Authorization": f"Session {TOKENS['ORION_TOKEN']}"}
    with httpx.Client(base_url=base, timeout=120) as client:
        chunks = [ids[i:i + 500] for i in range(0, len(ids), 500)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda c: client.post("/api/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves",
                                                json=c, headers=orion).json(), chunks))
        sei = {"Authorization": f"Bearer {TOKENS['SEI_TOKEN']}", "AppKey": TOKENS["SEI_APP_KEY"]}
        params = {"limit": 1000}
        while True:
            page = client.get("/v1/order/tradetickets", params=params, headers=sei).json()
            if not page["paging"]["next"]:
                break
            params["cursor"] = page["paging"]["next"]
    return parse, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registrations", type=int, default=10_000)
    ap.add_argument("--instructions", type=int, default=20_000)
    ap.add_argument("--drift", type=float, default=0.01)
    ap.add_argument("--dir", type=Path, help="work folder (default: a new temporary one)")
    args = ap.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-plan-"))
    root = work / "manifests"
    t = time.perf_counter()
    state = write_estate(root, args.registrations, args.instructions, drift=args.drift)
    (work / "state.json").write_text(json.dumps(state))
    print(f"data: {args.registrations} registrations, {args.instructions} instructions, drift {args.drift:.0%}, "
          f"{len(iter_manifest_files([str(root)])[0])} files (generated in {time.perf_counter() - t:.1f} s); "
          f"{os.cpu_count()} cores")

    port = free_port()
    env = {**os.environ, **TOKENS, "ORION_BASE_URL": f"http://127.0.0.1:{port}/api",
           "SEI_BASE_URL": f"http://127.0.0.1:{port}", "RECONCILER_STATS": "1", "CI": "true"}
    sandbox = subprocess.Popen([sys.executable, "-m", "reconciler", "sandbox", "--port", str(port), "--state",
                                str(work / "state.json")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{base}/_sandbox/health")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        ids = [r["registrationId"] for r in state["registrations"]]
        parse, fetch = floor(root, base, ids)
        httpx.post(f"{base}/_sandbox/counters/reset")
        cli = [sys.executable, "-m", "reconciler"]
        v_time, v_rss, v = timed_process(cli + ["validate", str(root)], env, work)
        assert v.returncode == 0, v.stderr[-2000:]
        p_time, p_rss, p = timed_process(cli + ["plan", str(root), "--detailed-exitcode"], env, work)
        assert p.returncode == 2, p.stderr[-2000:]
        counts = httpx.get(f"{base}/_sandbox/counters").json()
    finally:
        sandbox.terminate()
        sandbox.wait()
    stats = next((ln for ln in p.stderr.splitlines() if ln.startswith("stats:")), "stats: (none)")
    summary = p.stdout.strip().splitlines()
    floor_total = parse + fetch
    chunks = -(-args.registrations // 500)
    bulk = counts["requests"].get("POST /api/v1/Trading/Sleeve/Registrations/ListWithAccountSleeves", 0)
    print(f"floor:    parse {parse:6.2f} s + fetch {fetch:6.2f} s = {floor_total:6.2f} s")
    print(f"validate: {v_time:6.2f} s wall, peak RSS {v_rss / 1024:6.0f} MiB*  validate/parse = {v_time / parse:.2f}")
    print(f"plan:     {p_time:6.2f} s wall, peak RSS {p_rss / 1024:6.0f} MiB*  plan/floor     = {p_time / floor_total:.2f}")
    print(f"          {stats}")
    print(f"          requests: {counts['total']} in all; {bulk} bulk reads (limit ⌈N/500⌉ = {chunks}), "
          f"{sum(v for k, v in counts['requests'].items() if 'tradetickets' in k)} ticket pages")
    print(f"          {next((ln for ln in summary if ln.startswith('Plan:')), '')}")
    print("  * the largest single process of the command's tree (os.wait4), a parsing worker when they run")


if __name__ == "__main__":
    main()
