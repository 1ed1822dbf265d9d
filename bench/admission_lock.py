"""Admission passes per second from 1, 2 and 4 worker processes sharing one database.

Admission is one pass at a time: ``admit_waiting_runs`` holds a PostgreSQL
advisory lock (``pg_advisory_xact_lock``) for its whole transaction. A
worker makes a pass after every run it finishes, so the passes one
database can make in a second bound the runs per second of every worker
on it (requests are coalesced: one pass fills every slot freed since the
last). This script fills a throw-away database with ``--runs`` waiting runs
of ``--owners`` users and enough running ones to leave ``--free`` of the 5
slots free (1: after one run finished; 5: after several), then starts
``--processes`` (1, 2, 4) processes at once, each making passes back to back
for ``--seconds``:

* ``lock``: ``scheduling.admission.admit_waiting_runs(reclaim=False)`` as a
  worker calls it, each pass in a transaction that is then rolled back (no
  message reaches a broker; every pass sees the same rows and claims one);
* ``no lock``, the baseline: the same passes with the advisory lock left
  out. Not safe (two passes could fill the same slot); it shows what the
  processes would do if only the rows and the CPU limited them.

Printed for each: passes and runs admitted per second in all, each pass's
time (p50, p95) and, with the lock, the time spent waiting for it (p50, p95).

    python bench/admission_lock.py                     # 1, 2, 4 processes, 1 and 5 free, 10 s
    python bench/admission_lock.py --processes 1,2,4,8 --seconds 20 --json /tmp/lock.json

Needs PostgreSQL and Redis on 127.0.0.1; creates and drops its own database
and deletes only the Redis keys it created (DB 14 by default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    append_results,
    bench_database,
    bench_env,
    load_average,
    machine,
    percentile,
    print_table,
    redis_database,
    setup_django,
)

MAX_CONCURRENT = 5
WARM_UP_PASSES = 5


# --- one process --------------------------------------------------------------------


def child(start_at: float, seconds: float, locked: bool) -> dict:
    """Passes back to back from ``start_at`` for ``seconds``: each pass's and lock wait's ms."""
    import django

    django.setup()
    from django.db import transaction
    from django.test.utils import override_settings

    from scheduling import admission

    waits: list[float] = []
    take_lock = admission._lock_admission

    def timed_lock() -> None:
        started = time.perf_counter()
        take_lock()
        waits.append((time.perf_counter() - started) * 1000)

    admission._lock_admission = timed_lock if locked else (lambda: None)  # type: ignore[assignment]
    passes: list[float] = []
    admitted = 0
    with override_settings(SCHEDULER_MAX_CONCURRENT=MAX_CONCURRENT):
        for index in range(WARM_UP_PASSES + 1_000_000):
            if index == WARM_UP_PASSES:
                waits.clear()
                time.sleep(max(0.0, start_at - time.time()))
            if index >= WARM_UP_PASSES and time.time() >= start_at + seconds:
                break
            started = time.perf_counter()
            with transaction.atomic():
                admitted += len(admission.admit_waiting_runs(reclaim=False))
                transaction.set_rollback(True)
            if index >= WARM_UP_PASSES:
                passes.append((time.perf_counter() - started) * 1000)
    return {"passes": passes, "waits": waits, "admitted": admitted}


def run_processes(
    count: int, locked: bool, free: int, seconds: float, database_url: str, redis_url: str
) -> dict:
    start_at = time.time() + 3.0  # time for every process to import Django and warm up
    env = {**os.environ, **bench_env(database_url, redis_url)}
    command = [sys.executable, __file__, "--child", str(start_at), str(seconds)]
    children = [
        subprocess.Popen(
            [*command, "lock" if locked else "no-lock"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    outputs = []
    for process in children:
        out, _ = process.communicate(timeout=seconds + 120)
        if process.returncode != 0:
            raise RuntimeError(f"a pass process failed ({process.returncode})")
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    passes = [ms for output in outputs for ms in output["passes"]]
    waits = [ms for output in outputs for ms in output["waits"]]
    return {
        "processes": count,
        "lock": locked,
        "free": free,
        "passes": len(passes),
        "passes_per_second": len(passes) / seconds,
        "admitted_per_pass": sum(output["admitted"] for output in outputs)
        / max(1, sum(len(output["passes"]) + WARM_UP_PASSES for output in outputs)),
        "pass_p50_ms": percentile(passes, 0.5),
        "pass_p95_ms": percentile(passes, 0.95),
        "wait_p50_ms": percentile(waits, 0.5) if waits else None,
        "wait_p95_ms": percentile(waits, 0.95) if waits else None,
    }


# --- main ---------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        result = child(float(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "lock")
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="waiting runs (10,000)")
    parser.add_argument("--owners", type=int, default=100, help="users they belong to (100)")
    parser.add_argument("--processes", default="1,2,4", help="process counts, a list (1,2,4)")
    parser.add_argument("--free", default="1,5", help="free slots of 5, a list (1,5)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per case (10)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--json", type=Path, help="append the figures to this JSON file")
    args = parser.parse_args()
    try:
        counts = [int(item) for item in args.processes.split(",")]
        frees = [int(item) for item in args.free.split(",")]
    except ValueError:
        parser.error("--processes and --free want numbers separated by commas")
    if any(not 1 <= free <= MAX_CONCURRENT for free in frees):
        parser.error(f"each of --free must be 1 to {MAX_CONCURRENT}")
    if args.runs < 1 or not 1 <= args.owners <= args.runs or args.seconds <= 0:
        parser.error("need --runs >= 1, 1 <= --owners <= --runs and --seconds > 0")
    if any(not 1 <= count <= 16 for count in counts):
        parser.error("each of --processes must be 1 to 16")

    from bench.admission import load_runs

    about = machine()
    load = load_average()
    results = []
    with bench_database(args.postgres) as database_url, redis_database(args.redis) as redis_url:
        setup_django(database_url, redis_url)
        for free in frees:
            load_runs(args.runs, args.owners, MAX_CONCURRENT - free)
            for count in counts:
                for locked in (True, False):
                    results.append(
                        run_processes(count, locked, free, args.seconds, database_url, redis_url)
                    )
        load_after = load_average()

    print(f"\nAdmission passes from several processes, {about['date']}")
    print(
        f"{about['cpu']}, {about['nproc']} cores, {about['memory']} RAM; Python {about['python']}, "
        f"PostgreSQL {about['postgresql']}; load average {' '.join(load)} at the start, "
        f"{' '.join(load_after)} at the end"
    )
    print(
        f"{args.runs:,} waiting runs of {args.owners:,} owners, SCHEDULER_MAX_CONCURRENT="
        f"{MAX_CONCURRENT}, {args.seconds:g} s a case, each pass rolled back\n"
    )
    print_table(
        [
            "free",
            "processes",
            "lock",
            "passes/s",
            "runs/s",
            "pass p50",
            "p95",
            "lock wait p50",
            "p95",
        ],
        [
            [
                r["free"],
                r["processes"],
                "advisory lock" if r["lock"] else "none (baseline)",
                f"{r['passes_per_second']:,.0f}",
                f"{r['passes_per_second'] * r['admitted_per_pass']:,.0f}",
                f"{r['pass_p50_ms']:.2f} ms",
                f"{r['pass_p95_ms']:.2f} ms",
                "-" if r["wait_p50_ms"] is None else f"{r['wait_p50_ms']:.2f} ms",
                "-" if r["wait_p95_ms"] is None else f"{r['wait_p95_ms']:.2f} ms",
            ]
            for r in results
        ],
    )
    print(
        "\npass: admit_waiting_runs(reclaim=False) in a rolled-back transaction, the lock "
        "held to its end; lock wait: pg_advisory_xact_lock alone."
    )
    if args.json:
        append_results(
            args.json,
            {
                "benchmark": "admission_lock",
                "machine": about,
                "load": load,
                "runs": args.runs,
                "owners": args.owners,
                "results": results,
            },
        )


if __name__ == "__main__":
    main()
