"""Apply throughput: 1,000 changed registrations, 1 batch at a time vs 4 at a time, in one run; and,
with --backend-url, the same apply on the local SQLite journal vs the shared PostgreSQL one.

    .venv/bin/python -m tests.benchmarks.bench_apply [--registrations 1000] [--latency 2.0]
    .venv/bin/python -m tests.benchmarks.bench_apply --backend-url postgresql://user:pw@127.0.0.1:5432/db

Each run starts from the same drifted sandbox state; the sandbox processes every batch for
`--latency` seconds (batches run concurrently, as Orion's do). Prints wall times and the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from reconciler.apply.evaluator import Evaluator
from reconciler.manifests import load_manifests
from reconciler.plan.builder import build_plan
from reconciler.plan.stages import build_stages
from reconciler.sandbox.server import start_sandbox
from reconciler.sandbox.state import SandboxState, SandboxTiming
from reconciler.state.claims import SqliteClaims
from reconciler.state.sqlite import SqliteJournal
from reconciler.vendors import open_vendors
from reconciler.vendors.reads import read_live_state
from tests.benchmarks.estate import write_estate
from tests.helpers.vendors import settings_for


def run(
    registrations: int, latency: float, parallelism: int, root: Path, state: dict, backend_url: str | None = None
) -> tuple[float, int]:
    sandbox_state = SandboxState.from_json(state, timing=SandboxTiming(batch_latency=latency))
    with start_sandbox(sandbox_state) as sb:
        settings = settings_for(sb, parallelism=parallelism, read_timeout=60)
        manifests = load_manifests([str(root)])
        with open_vendors(settings) as vendors:
            live = read_live_state(vendors, manifests.registrations, manifests.instructions, settings)
            plan = build_plan(manifests, live)
            start = time.perf_counter()
            if backend_url:
                from reconciler.config import Secret
                from reconciler.state.postgres import PostgresJournal

                journal = PostgresJournal(Secret(backend_url), f"bench-{time.time()}")
            else:
                journal = SqliteJournal(root.parent / f"journal-{parallelism}-{time.time()}.db")
            result = Evaluator(
                vendors,
                journal,
                settings,
                manifests,
                claims=SqliteClaims(root.parent / "claims.db", "bench", str(root.parent)),
            ).run(build_stages(plan, parallelism=settings.parallelism), journal.begin_run("bench"))
            elapsed = time.perf_counter() - start
        assert result.exit_code == 0, result.counts()
        batches = sum(1 for w in sb.state.writes if w["api"] == "orion")
    return elapsed, batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registrations", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=2.0)
    ap.add_argument("--backend-url", help="compare the local journal with this PostgreSQL one (parallelism 4)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    state = write_estate(tmp / "m", args.registrations, 0, drift=1.0)
    print(f"apply {args.registrations} changed registrations; sandbox batch latency {args.latency:g} s")
    times = {}
    for parallelism in (1, 4):
        elapsed, batches = run(args.registrations, args.latency, parallelism, tmp / "m", state)
        times[parallelism] = elapsed
        print(f"  parallelism {parallelism}: {elapsed:6.2f} s  ({batches} batch POSTs)")
    print(f"  ratio parallel/serial: {times[4] / times[1]:.2f}  (ideal for 10 batches: 3/10 = 0.30)")
    if args.backend_url:
        shared, _ = run(args.registrations, args.latency, 4, tmp / "m", state, args.backend_url)
        print(
            f"  parallelism 4, PostgreSQL journal: {shared:6.2f} s vs SQLite {times[4]:.2f} s: "
            f"{shared - times[4]:+.2f} s ({(shared / times[4] - 1) * 100:+.1f}%)"
        )


if __name__ == "__main__":
    main()
