"""Run throughput: no-op ``demo`` runs through the whole path against bare Celery no-ops.

One real Celery worker, started with the Procfile's settings (thread pool, 8
threads), serves both measurements in turn:

* ``bare``: N messages of a Celery task that does nothing (``bench.noop``),
  sent with ``apply_async``; done when the worker has logged N successes;
* ``runs``: N runs of ``demo`` agents configured ``{"steps": 0}``, queued with
  ``scheduling.runs.run_now`` (a session row, the admission request, admission
  with its lease, the start, the runner, the finish, the lifecycle events and
  the status broadcast); done when all N sessions are SUCCEEDED.

Both are measured twice. ``end to end`` runs from the first message (or
``run_now``) to the last completion, so it includes the enqueueing, done in
this process as an API process would. ``pre-queued`` sends everything while
the worker's consumer is paused (``cancel_consumer``) and runs from the moment
it resumes: the worker's own throughput. ``--profile`` samples the worker with
py-spy (GIL holder only) during the pre-queued runs, in py-spy's raw format.
The runs are spread over ``--agents`` agents, since one agent never runs twice
at once; ``SCHEDULER_MAX_CONCURRENT`` stays at its default (5) unless
``--max-concurrent`` says otherwise.

    python bench/throughput.py                      # 300 of each
    python bench/throughput.py --runs 3000
    python bench/throughput.py --runs 2000 --max-concurrent 8 --profile /tmp/worker.txt

Needs PostgreSQL and Redis on 127.0.0.1. It creates and drops its own database
and only deletes the Redis keys it created (DB 14 by default).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from celery import shared_task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    append_results,
    bench_database,
    cpu_seconds,
    load_average,
    machine,
    print_table,
    redis_database,
    rss_mib,
    setup_django,
)
from tests.processes import BIN, Process, poll, start_worker

NOOP_TASK = "bench.noop"
HOSTNAME_PREFIX = "bench-throughput"
WARMUP = 20
_SUCCEEDED = re.compile(r"Task ([\w.:]+)\[[0-9a-f-]+\] succeeded")


@shared_task(name=NOOP_TASK, ignore_result=True)
def noop() -> None:
    """The baseline: a task that does nothing at all."""


# --- processes ------------------------------------------------------------------------


def start_throughput_worker(queue: str) -> Worker:
    """The Procfile's worker, plus this module so it knows the no-op task."""
    process = start_worker(
        hostname=f"{HOSTNAME_PREFIX}-{os.getpid()}@%h", options=["--include=bench.throughput"]
    )
    return Worker(process, queue)


def task_counts(worker: Process) -> collections.Counter[str]:
    """How many tasks of each name the worker has finished, from its log."""
    return collections.Counter(_SUCCEEDED.findall(worker.output()))


@contextlib.contextmanager
def profiling(worker: Worker, path: str | None, duration: int):
    """Sample the worker with py-spy while the block runs (idle samples left out)."""
    if not path:
        yield
        return
    spy = subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(worker.child.popen.pid),
            "--duration",
            str(duration),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            path,
            "--nonblocking",
            "--gil",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(2)
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(timeout=30)
        if spy.poll() is None:
            spy.kill()


# --- measurements ---------------------------------------------------------------------


class Worker:
    """The worker process, and the remote control to stop and resume its consuming."""

    def __init__(self, child: Process, queue: str) -> None:
        self.child = child
        self.queue = queue
        self.name = f"{HOSTNAME_PREFIX}-{os.getpid()}@{socket.gethostname()}"

    def pause(self) -> None:
        from neonhub.celery import app

        replies = app.control.cancel_consumer(
            self.queue, destination=[self.name], reply=True, timeout=10
        )
        if not replies:
            raise RuntimeError("the worker did not answer cancel_consumer")

    def resume(self) -> None:
        from neonhub.celery import app

        replies = app.control.add_consumer(
            self.queue, destination=[self.name], reply=True, timeout=10
        )
        if not replies:
            raise RuntimeError("the worker did not answer add_consumer")


def measure(
    worker: Worker,
    label: str,
    enqueue: Callable[[int], None],
    done_count: Callable[[], int],
    runs: int,
    timeout: float,
    *,
    prequeued: bool,
) -> dict:
    """Time ``runs`` items from enqueueing (or, ``prequeued``, from the moment a paused
    worker resumes with all of them waiting) until ``done_count`` has grown by ``runs``."""
    before_done = done_count()
    before_tasks = task_counts(worker.child)
    if prequeued:
        worker.pause()
        enqueue_started = time.perf_counter()
        for index in range(runs):
            enqueue(index)
        enqueue_seconds = time.perf_counter() - enqueue_started
    cpu_before, own_before = cpu_seconds(worker.child.popen.pid), time.process_time()
    started = time.perf_counter()
    if prequeued:
        worker.resume()
    else:
        for index in range(runs):
            enqueue(index)
        enqueue_seconds = time.perf_counter() - started
    complete = poll(lambda: done_count() - before_done >= runs, timeout, interval=0.02)
    elapsed = time.perf_counter() - started
    worker_cpu = cpu_seconds(worker.child.popen.pid) - cpu_before
    own_cpu = time.process_time() - own_before
    finished = done_count() - before_done
    tasks = task_counts(worker.child) - before_tasks
    return {
        "path": label,
        "mode": "pre-queued" if prequeued else "end to end",
        "runs": runs,
        "finished": finished,
        "complete": complete,
        "seconds": elapsed,
        "enqueue_seconds": enqueue_seconds,
        "per_second": finished / elapsed,
        "worker_rss_mib": rss_mib(worker.child.popen.pid),
        "worker_cpu_ms_per_run": 1000 * worker_cpu / max(1, finished),
        "this_process_cpu_ms_per_run": 1000 * own_cpu / max(1, finished),
        "tasks_per_run": {name: count / max(1, finished) for name, count in tasks.items()},
    }


def measure_bare(worker: Worker, runs: int, timeout: float, *, prequeued: bool) -> dict:
    return measure(
        worker,
        "bare Celery no-op",
        lambda index: noop.apply_async(),
        lambda: task_counts(worker.child)[NOOP_TASK],
        runs,
        timeout,
        prequeued=prequeued,
    )


def measure_runs(
    worker: Worker, agents: list, runs: int, timeout: float, *, prequeued: bool
) -> dict:
    from agents.models import ExecutionSession
    from scheduling.runs import run_now

    succeeded = ExecutionSession.objects.filter(status=ExecutionSession.Status.SUCCEEDED)
    return measure(
        worker,
        "demo runs, full path",
        lambda index: run_now(agents[index % len(agents)]),
        succeeded.count,
        runs,
        timeout,
        prequeued=prequeued,
    )


def create_agents(count: int) -> list:
    from django.contrib.auth import get_user_model

    from agents.models import AIAgent

    owner = get_user_model().objects.create_user("throughput-bench", password=None)
    return AIAgent.objects.bulk_create(
        AIAgent(owner=owner, name=f"noop {i}", agent_type="demo", configuration={"steps": 0})
        for i in range(count)
    )


def warm_up(worker: Worker, agents: list) -> None:
    """Imports, connection pools and the first queries happen before the clock runs."""
    measure_bare(worker, WARMUP, timeout=60, prequeued=False)
    measure_runs(worker, agents, WARMUP, timeout=120, prequeued=False)


# --- main -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="runs of each kind (300)")
    parser.add_argument("--agents", type=int, default=50, help="agents the runs spread over")
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="SCHEDULER_MAX_CONCURRENT for the runs (default: the setting's default, 5)",
    )
    parser.add_argument("--timeout", type=float, default=600, help="limit per measurement, s")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for this run's processes, e.g. DATABASE_CONN_MAX_AGE=60 (repeatable)",
    )
    parser.add_argument("--profile", help="write py-spy samples of the worker's runs here")
    parser.add_argument("--json", type=Path, help="append the figures to this JSON file")
    args = parser.parse_args()
    if args.runs < 1 or args.agents < 1:
        parser.error("--runs and --agents must be at least 1")

    about = machine()
    load = load_average()
    extra = {"CELERY_QUEUE": f"bench-throughput-{os.getpid()}"}
    if args.max_concurrent:
        extra["SCHEDULER_MAX_CONCURRENT"] = str(args.max_concurrent)
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--env wants NAME=VALUE, got {item!r}")
        extra[name] = value
    with bench_database(args.postgres) as database_url, redis_database(args.redis) as redis_url:
        setup_django(database_url, redis_url, **extra)
        from django.conf import settings

        agents = create_agents(min(args.agents, args.runs))
        worker = start_throughput_worker(extra["CELERY_QUEUE"])
        results: list[tuple[dict, dict]] = []
        try:
            warm_up(worker, agents)
            for prequeued in (False, True):
                bare = measure_bare(worker, args.runs, args.timeout, prequeued=prequeued)
                profile = args.profile if prequeued else None
                with profiling(worker, profile, duration=int(args.timeout)):
                    full = measure_runs(
                        worker, agents, args.runs, args.timeout, prequeued=prequeued
                    )
                results.append((bare, full))
        finally:
            worker.child.stop()
            worker.child.remove_log()
        max_concurrent = settings.SCHEDULER_MAX_CONCURRENT

    print(f"\nRun throughput, {about['date']}")
    print(
        f"{about['cpu']}, {about['nproc']} cores, {about['memory']} RAM; Python {about['python']}, "
        f"PostgreSQL {about['postgresql']}, Redis {about['redis']}; load average {' '.join(load)}"
    )
    print(
        f"worker: --pool=threads --concurrency=8; {args.runs} of each; runs over "
        f"{len(agents)} agents, SCHEDULER_MAX_CONCURRENT={max_concurrent}"
        + "".join(f", {item}" for item in args.env)
        + "\n"
    )
    rows = []
    for pair in results:
        ratio = pair[1]["per_second"] / pair[0]["per_second"]
        for result in pair:
            rows.append(
                [
                    result["mode"],
                    result["path"],
                    f"{result['finished']}/{result['runs']}",
                    f"{result['seconds']:.2f} s",
                    f"{result['enqueue_seconds']:.2f} s",
                    f"{result['per_second']:.1f}",
                    f"{ratio:.1%}" if result is pair[1] else "",
                    f"{result['worker_cpu_ms_per_run']:.1f} ms",
                    f"{result['this_process_cpu_ms_per_run']:.1f} ms",
                    f"{result['worker_rss_mib']:.0f} MiB" if result["worker_rss_mib"] else "-",
                ]
            )
    print_table(
        [
            "mode",
            "path",
            "done",
            "wall",
            "enqueue",
            "per s",
            "of bare",
            "worker CPU/run",
            "sender CPU/run",
            "worker RSS",
        ],
        rows,
    )
    for bare, full in results:
        ratio = full["per_second"] / bare["per_second"]
        verdict = "meets" if ratio >= 0.5 else "misses"
        per_run = ", ".join(f"{name} {n:.2f}" for name, n in sorted(full["tasks_per_run"].items()))
        print(f"\n{full['mode']}: runs / bare = {ratio:.1%} ({verdict} the 50% target)")
        print(f"  Celery tasks per run: {per_run}")
    print(
        "\nend to end: timed from the first send to the last completion, sending included;"
        "\npre-queued: everything sent while the worker was paused, timed from its resuming."
    )
    if args.json:
        append_results(
            args.json,
            {
                "benchmark": "throughput",
                "machine": about,
                "load": load,
                "max_concurrent": max_concurrent,
                "agents": len(agents),
                "env": args.env,
                "results": [
                    {"bare": bare, "runs": full, "ratio": full["per_second"] / bare["per_second"]}
                    for bare, full in results
                ],
            },
        )


if __name__ == "__main__":
    main()
