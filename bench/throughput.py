"""Run throughput: no-op ``demo`` runs through the whole path against bare Celery
no-ops, Celery + django-celery-results and django-q2.

One real Celery worker (or ``--worker-processes`` of them), started with the
Procfile's settings (thread pool, 8 threads), serves our two measurements in turn:

* ``bare``: N messages of a Celery task that does nothing (``bench.noop``),
  sent with ``apply_async``; done when the worker has logged N successes;
* ``runs``: N runs of ``demo`` agents configured ``{"steps": 0}``, queued with
  ``scheduling.runs.run_now`` (a session row, the admission request, admission
  with its lease, the start, the runner, the finish, the lifecycle events and
  the status broadcast); done when all N sessions are SUCCEEDED.

and, as the peers a user who wants a history row per task would pick instead:

* ``Celery + django-celery-results``: the same no-op on a second worker with
  the same settings whose result backend is ``django-db`` with
  ``track_started`` (a STARTED and a SUCCESS row per task, in PostgreSQL);
* ``django-q2``: the same no-op through ``async_task`` on a ``qcluster`` of
  four workers with the Redis broker, a Success row per task.

Each is measured in two modes (django-q2, which has no way to pause a running
cluster's consuming, only in the first). ``end to end`` runs from the first
message (or ``run_now``) to the last completion, so it includes the
enqueueing, done in this process as an API process would. ``pre-queued`` sends everything while
the worker's consumer is paused (``cancel_consumer``) and runs from the moment
it resumes: the worker's own throughput. ``--profile`` samples the worker with
py-spy (GIL holder only) during the pre-queued runs, in py-spy's raw format.
The runs are spread over ``--agents`` agents, since one agent never runs twice
at once; ``SCHEDULER_MAX_CONCURRENT`` stays at its default (5) unless
``--max-concurrent`` says otherwise.

    python bench/throughput.py                      # 300 of each
    python bench/throughput.py --runs 3000
    python bench/throughput.py --runs 2000 --max-concurrent 8 --profile /tmp/worker.txt
    python bench/throughput.py --runs 1000 --worker-processes 2   # two of our workers

Needs PostgreSQL and Redis on 127.0.0.1. It creates and drops its own database
and only deletes the Redis keys it created (DB 14 by default).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
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
    load_average,
    machine,
    print_table,
    redis_database,
    setup_django,
    tree_cpu_seconds,
    tree_rss_mib,
)
from bench.peer_tasks import PEER_CELERY_TASK, celery_noop
from tests.processes import BIN, ROOT, Process, child_env, poll, start_worker

NOOP_TASK = "bench.noop"
HOSTNAME_PREFIX = "bench-throughput"
WARMUP = 20
_SUCCEEDED = re.compile(r"Task ([\w.:]+)\[[0-9a-f-]+\] succeeded")
PEER_SETTINGS = "bench.peer_settings"


@shared_task(name=NOOP_TASK, ignore_result=True)
def noop() -> None:
    """The baseline: a task that does nothing at all."""


# --- processes ------------------------------------------------------------------------


def start_throughput_workers(queue: str, count: int) -> Worker:
    """The Procfile's worker, ``count`` times on one queue, plus this module so they
    know the no-op task."""
    names = [f"{HOSTNAME_PREFIX}-{os.getpid()}-{index}" for index in range(count)]
    processes = [
        start_worker(hostname=f"{name}@%h", options=["--include=bench.throughput"])
        for name in names
    ]
    return Worker(processes, queue, names)


def start_peer_worker(queue: str) -> Worker:
    """The same worker settings with django-celery-results as its result backend,
    consuming a queue of its own."""
    name = f"{HOSTNAME_PREFIX}-peer-{os.getpid()}"
    process = start_worker(
        hostname=f"{name}@%h",
        options=["--include=bench.peer_tasks", f"--queues={queue}"],
        DJANGO_SETTINGS_MODULE=PEER_SETTINGS,
    )
    return Worker([process], queue, [name])


def start_q_cluster() -> QCluster:
    """``manage.py qcluster`` with the peer settings (four workers, Redis broker)."""
    process = Process(
        "qcluster",
        [str(BIN / "python"), str(ROOT / "manage.py"), "qcluster"],
        child_env(DJANGO_SETTINGS_MODULE=PEER_SETTINGS),
    )
    process.wait_for(lambda: "running." in process.output(), 60, "Q Cluster running")
    return QCluster(process)


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
            str(worker.children[0].popen.pid),
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
    """Celery worker processes on one queue, and the remote control to stop and resume
    their consuming."""

    def __init__(self, children: list[Process], queue: str, names: list[str]) -> None:
        self.children = children
        self.queue = queue
        self.names = [f"{name}@{socket.gethostname()}" for name in names]

    def cpu_seconds(self) -> float:
        return sum(tree_cpu_seconds(child.popen.pid) for child in self.children)

    def rss_mib(self) -> float | None:
        sizes = [size for child in self.children if (size := tree_rss_mib(child.popen.pid))]
        return sum(sizes) if sizes else None

    def task_counts(self) -> collections.Counter[str]:
        return sum((task_counts(child) for child in self.children), collections.Counter())

    def stop(self) -> None:
        for child in self.children:
            child.stop()
            child.remove_log()

    def pause(self) -> None:
        from neonhub.celery import app

        replies = app.control.cancel_consumer(
            self.queue, destination=self.names, reply=True, timeout=10
        )
        if len(replies) < len(self.names):
            raise RuntimeError("the worker did not answer cancel_consumer")

    def resume(self) -> None:
        from neonhub.celery import app

        replies = app.control.add_consumer(
            self.queue, destination=self.names, reply=True, timeout=10
        )
        if len(replies) < len(self.names):
            raise RuntimeError("the worker did not answer add_consumer")


class QCluster:
    """A django-q2 cluster: its guard process and the worker processes under it."""

    def __init__(self, child: Process) -> None:
        self.child = child

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.child.popen.pid)

    def rss_mib(self) -> float | None:
        return tree_rss_mib(self.child.popen.pid)

    def task_counts(self) -> collections.Counter[str]:
        return collections.Counter()


def measure(
    worker: Worker | QCluster,
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
    before_tasks = worker.task_counts()
    if prequeued:
        assert isinstance(worker, Worker)
        worker.pause()
        enqueue_started = time.perf_counter()
        for index in range(runs):
            enqueue(index)
        enqueue_seconds = time.perf_counter() - enqueue_started
    cpu_before, own_before = worker.cpu_seconds(), time.process_time()
    started = time.perf_counter()
    if prequeued:
        assert isinstance(worker, Worker)
        worker.resume()
    else:
        for index in range(runs):
            enqueue(index)
        enqueue_seconds = time.perf_counter() - started
    complete = poll(lambda: done_count() - before_done >= runs, timeout, interval=0.02)
    elapsed = time.perf_counter() - started
    worker_cpu = worker.cpu_seconds() - cpu_before
    own_cpu = time.process_time() - own_before
    finished = done_count() - before_done
    tasks = worker.task_counts() - before_tasks
    return {
        "path": label,
        "mode": "pre-queued" if prequeued else "end to end",
        "runs": runs,
        "finished": finished,
        "complete": complete,
        "seconds": elapsed,
        "enqueue_seconds": enqueue_seconds,
        "per_second": finished / elapsed,
        "worker_rss_mib": worker.rss_mib(),
        "worker_cpu_ms_per_run": 1000 * worker_cpu / max(1, finished),
        "this_process_cpu_ms_per_run": 1000 * own_cpu / max(1, finished),
        "tasks_per_run": {name: count / max(1, finished) for name, count in tasks.items()},
    }


def measure_bare(worker: Worker, runs: int, timeout: float, *, prequeued: bool) -> dict:
    return measure(
        worker,
        "bare Celery no-op",
        lambda index: noop.apply_async(),
        lambda: worker.task_counts()[NOOP_TASK],
        runs,
        timeout,
        prequeued=prequeued,
    )


def measure_celery_results(worker: Worker, runs: int, timeout: float, *, prequeued: bool) -> dict:
    from django_celery_results.models import TaskResult

    stored = TaskResult.objects.filter(task_name=PEER_CELERY_TASK, status="SUCCESS")
    return measure(
        worker,
        "Celery + django-celery-results",
        lambda index: celery_noop.apply_async(queue=worker.queue),
        stored.count,
        runs,
        timeout,
        prequeued=prequeued,
    )


def measure_q2_cluster(runs: int, timeout: float) -> dict:
    """A cluster of its own for the measurement, warmed up first, so its four idle
    processes do not share the cores with the other measurements."""
    cluster = start_q_cluster()
    try:
        measure_q2(cluster, WARMUP, timeout=60)
        return measure_q2(cluster, runs, timeout)
    finally:
        cluster.child.stop()
        cluster.child.remove_log()


def measure_q2(cluster: QCluster, runs: int, timeout: float) -> dict:
    from django_q.models import Success
    from django_q.tasks import async_task

    # Its INFO line per enqueued task would be this process's terminal output, not work.
    logging.getLogger("django-q").setLevel(logging.WARNING)
    return measure(
        cluster,
        "django-q2",
        lambda index: async_task("bench.peer_tasks.q_noop"),
        Success.objects.count,
        runs,
        timeout,
        prequeued=False,
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


def warm_up(worker: Worker, peer: Worker, agents: list) -> None:
    """Imports, connection pools and the first queries happen before the clock runs."""
    measure_bare(worker, WARMUP, timeout=60, prequeued=False)
    measure_celery_results(peer, WARMUP, timeout=60, prequeued=False)
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
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=1,
        help="our worker processes, each as the Procfile starts one (default 1); the bare"
        " no-op shares them, the Celery peer keeps one",
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
    if args.runs < 1 or args.agents < 1 or args.worker_processes < 1:
        parser.error("--runs, --agents and --worker-processes must be at least 1")

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
    extra["DJANGO_SETTINGS_MODULE"] = PEER_SETTINGS
    peer_queue = f"{extra['CELERY_QUEUE']}-peer"
    with bench_database(args.postgres) as database_url, redis_database(args.redis) as redis_url:
        setup_django(database_url, redis_url, **extra)
        from django.conf import settings

        agents = create_agents(min(args.agents, args.runs))
        worker = start_throughput_workers(extra["CELERY_QUEUE"], args.worker_processes)
        peer = start_peer_worker(peer_queue)
        modes: list[dict[str, dict | None]] = []
        try:
            warm_up(worker, peer, agents)
            for prequeued in (False, True):
                mode: dict[str, dict | None] = {
                    "bare": measure_bare(worker, args.runs, args.timeout, prequeued=prequeued),
                    "celery_results": measure_celery_results(
                        peer, args.runs, args.timeout, prequeued=prequeued
                    ),
                    "q2": None if prequeued else measure_q2_cluster(args.runs, args.timeout),
                }
                profile = args.profile if prequeued else None
                with profiling(worker, profile, duration=int(args.timeout)):
                    mode["runs"] = measure_runs(
                        worker, agents, args.runs, args.timeout, prequeued=prequeued
                    )
                modes.append(mode)
        finally:
            worker.stop()
            peer.stop()
        max_concurrent = settings.SCHEDULER_MAX_CONCURRENT

    print(f"\nRun throughput, {about['date']}")
    print(
        f"{about['cpu']}, {about['nproc']} cores, {about['memory']} RAM; Python {about['python']}, "
        f"PostgreSQL {about['postgresql']}, Redis {about['redis']}; load average {' '.join(load)}"
    )
    print(
        f"Celery workers: --pool=threads --concurrency=8 ({args.worker_processes} of ours, one"
        " for the peer); django-q2: 4 workers, Redis broker; "
        f"{args.runs} of each; runs over {len(agents)} agents, "
        f"SCHEDULER_MAX_CONCURRENT={max_concurrent}"
        + "".join(f", {item}" for item in args.env)
        + "\n"
    )
    rows = []
    for mode in modes:
        ours = mode["runs"]
        assert ours is not None
        for result in mode.values():
            if result is None:
                continue
            rows.append(
                [
                    result["mode"],
                    result["path"],
                    f"{result['finished']}/{result['runs']}",
                    f"{result['seconds']:.2f} s",
                    f"{result['enqueue_seconds']:.2f} s",
                    f"{result['per_second']:.1f}",
                    "" if result is ours else f"{ours['per_second'] / result['per_second']:.1%}",
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
            "ours / this",
            "worker CPU/run",
            "sender CPU/run",
            "worker RSS",
        ],
        rows,
    )
    for mode in modes:
        ours = mode["runs"]
        assert ours is not None
        print(f"\n{ours['mode']}:")
        for key, target in (("q2", "at least django-q2's"), ("celery_results", "at least theirs")):
            peer_result = mode[key]
            if peer_result is None:
                continue
            ratio = ours["per_second"] / peer_result["per_second"]
            verdict = "meets" if ratio >= 1 else "misses"
            print(f"  runs / {peer_result['path']} = {ratio:.1%} ({verdict} the target: {target})")
        per_run = ", ".join(f"{name} {n:.2f}" for name, n in sorted(ours["tasks_per_run"].items()))
        print(f"  Celery tasks per run: {per_run}")
    print(
        "\nend to end: timed from the first send to the last completion, sending included;"
        "\npre-queued: everything sent while the worker was paused, timed from its resuming"
        " (not for django-q2, whose cluster cannot pause);"
        "\nworker CPU and RSS: the worker process and its children (django-q2: the cluster's)."
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
                "worker_processes": args.worker_processes,
                "env": args.env,
                "results": modes,
            },
        )


if __name__ == "__main__":
    main()
