"""Event latency: a worker emits, WebSocket clients receive; beside a raw Redis pub/sub round trip.

It starts a real daphne (``tests.processes.start_daphne``) on a throw-away
PostgreSQL database and Redis, connects N WebSocket clients (the ``websockets``
asyncio client, all in this process, each with a real JWT), and has each one
subscribe to two rooms: its own agent's (``agent:<id>``) and one agent that
everybody watches. Then, for each client count, an emitter in a separate
process (Django set up as a worker's is) sends, paced:

* ``pub/sub``: plain Redis ``PUBLISH`` of a frame-sized message to one
  subscriber in this process: the floor any Redis-based delivery stands on;
* ``own room``: ``agent:progress`` events through the one emitter
  (``realtime.events.emit_progress`` -> ``realtime.publisher.send_now``, to the
  agent's, its owner's and the staff groups, as a run does), each for one
  client's agent: one delivery per event;
* ``shared room``: the same events for the agent everyone watches: N
  deliveries per event, paced to at most 500 frames a second so the figure
  is latency rather than a queue that keeps growing.

Each phase has an emitter process of its own; daphne's and this process's CPU
time over the phase are reported per delivered frame. ``--web-processes K``
starts K daphnes, one port each, and connects client i to daphne i mod K, as
a load balancer would spread them (their CPU is added up).

Latency is the moment a client has the frame minus the ``timestamp`` inside it
(set by the payload builder just before sending), over every delivery.

    python bench/event_latency.py                        # 50 and 200 clients
    python bench/event_latency.py --clients 10,100,250,500,1000 \\
        --plot docs/performance/event_latency.png
    python bench/event_latency.py --clients 1000 --web-processes 4

Needs PostgreSQL and Redis on 127.0.0.1. It creates and drops its own database
and only deletes the Redis keys it created (DB 14 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    append_results,
    bench_database,
    bench_env,
    cpu_seconds,
    load_average,
    machine,
    percentile,
    print_table,
    redis_database,
    rss_mib,
    setup_django,
)
from tests.processes import start_daphne

TARGET_P99_MS = 50.0
CONNECT_PARALLEL = 50
PUBSUB_CHANNEL = "neonhub:bench:pubsub"
GRACE_SECONDS = 30.0
# The shared room costs one frame per client per event: its pace stays below
# what one daphne can deliver, so the figures are latency, not a queue growing.
SHARED_FRAMES_PER_SECOND = 500
BENCH_USER = "latency-bench"


# --- the emitter process ------------------------------------------------------------------


def emit(phase: str, agent_ids: list[str], hot_id: str, count: int, rate: float) -> None:
    """Run in a process of its own, like a worker: send ``count`` messages of one phase."""
    import django

    django.setup()
    import redis
    from django.conf import settings

    from agents.models import AIAgent, ExecutionSession
    from realtime import events as emitter

    agents = {str(agent.pk): agent for agent in AIAgent.objects.filter(pk__in=[*agent_ids, hot_id])}
    sessions = {pk: ExecutionSession(agent=agent) for pk, agent in agents.items()}
    client = redis.Redis.from_url(settings.REDIS_URL)

    def publish(index: int) -> None:
        agent = agents[agent_ids[index % len(agent_ids)]]
        frame = {
            "event": emitter.AGENT_PROGRESS,
            "data": emitter.progress_payload(sessions[str(agent.pk)], agent, 50, "Step 1 of 2"),
        }
        client.publish(PUBSUB_CHANNEL, json.dumps(frame))

    def own(index: int) -> None:
        agent = agents[agent_ids[index % len(agent_ids)]]
        emitter.emit_progress(sessions[str(agent.pk)], agent, 50, "Step 1 of 2")

    def shared(index: int) -> None:
        emitter.emit_progress(sessions[hot_id], agents[hot_id], 50, "Step 1 of 2")

    send = {"pubsub": publish, "own_room": own, "shared_room": shared}[phase]
    # The first send opens the publisher's connections; it is not measured.
    emitter.emit_scheduler_status({"warmUp": True})
    client.ping()
    print("START", flush=True)
    started = time.perf_counter()
    for index in range(count):
        # Sleep to the next slot rather than a fixed gap, so a slow send does
        # not lower the rate.
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(index)
    print("END", flush=True)


# --- the clients ----------------------------------------------------------------------------


class Clients:
    """N WebSocket clients in this process, each subscribed to its agent and the shared one."""

    def __init__(self, urls: list[str], token: str, agent_ids: list[str], hot_id: str) -> None:
        # Client i goes to web process i mod len(urls), as a load balancer would spread them.
        self.urls = urls
        self.token = token
        self.agent_ids = agent_ids
        self.hot_id = hot_id
        self.sockets: list = []
        self.readers: list[asyncio.Task] = []
        self.received: list[tuple[float, str]] = []
        # Close codes of sockets that ended before the bench closed them.
        self.closed: list[int | None] = []

    async def grow_to(self, count: int) -> float:
        """Connect and subscribe clients until ``count`` are open; returns the seconds it took."""
        started = time.perf_counter()
        gate = asyncio.Semaphore(CONNECT_PARALLEL)

        async def one(index: int) -> None:
            async with gate:
                await self._connect(index)

        await asyncio.gather(*(one(index) for index in range(len(self.sockets), count)))
        return time.perf_counter() - started

    async def _connect(self, index: int) -> None:
        import websockets

        socket = await websockets.connect(
            f"{self.urls[index % len(self.urls)]}?token={self.token}",
            open_timeout=60,
            ping_interval=None,
            max_queue=None,
        )
        for target in (self.agent_ids[index], self.hot_id):
            await socket.send(json.dumps({"event": "agent:subscribe", "data": target}))
            answer = json.loads(await asyncio.wait_for(socket.recv(), 30))
            if answer.get("event") != "subscribed":
                raise RuntimeError(f"subscribe answered {answer}")
        self.sockets.append(socket)
        self.readers.append(asyncio.create_task(self._read(socket)))

    async def _read(self, socket) -> None:
        received = self.received
        try:
            async for raw in socket:
                # The clock first: parsing waits until the measurement is over.
                received.append((time.time(), raw))
        except Exception:  # a closed socket ends its reader; counts show the loss
            pass
        self.closed.append(socket.close_code)

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in self.sockets), return_exceptions=True)


async def pubsub_listener(redis_url: str, received: list[tuple[float, str]], ready: asyncio.Event):
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(PUBSUB_CHANNEL)
    ready.set()
    try:
        async for message in pubsub.listen():
            if message["type"] == "message":
                received.append((time.time(), message["data"]))
    finally:
        await pubsub.aclose()
        await client.aclose()


def latencies_ms(received: list[tuple[float, str]], agent_filter) -> list[float]:
    found = []
    for moment, raw in received:
        frame = json.loads(raw)
        if frame.get("event") != "agent:progress":
            continue
        data = frame["data"]
        if not agent_filter(data["agentId"]):
            continue
        sent = datetime.fromisoformat(data["timestamp"]).timestamp()
        found.append((moment - sent) * 1000)
    return found


def summary(values: list[float], expected: int) -> dict:
    return {
        "deliveries": len(values),
        "expected": expected,
        "p50_ms": percentile(values, 0.50),
        "p95_ms": percentile(values, 0.95),
        "p99_ms": percentile(values, 0.99),
        "max_ms": max(values) if values else None,
    }


def web_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def shared_rate(rate: float, clients: int) -> float:
    return min(rate / 10, SHARED_FRAMES_PER_SECOND / clients)


async def run_phase(
    phase: str,
    spec: dict,
    env: dict[str, str],
    daphne_pids: list[int],
    done: Callable[[], bool],
) -> tuple[float, float, float]:
    """One emitter process for one phase; returns the CPU seconds the daphne processes
    and this process used while it sent, and how long that took."""
    emitter = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--emit",
        json.dumps({**spec, "phase": phase}),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    errors = asyncio.create_task(emitter.stderr.read())

    async def line() -> str:
        return (await asyncio.wait_for(emitter.stdout.readline(), 300)).decode().strip()

    try:
        while (text := await line()) != "START":
            if not text:
                raise RuntimeError("the emitter stopped before it started")
        web, own, started = web_cpu(daphne_pids), time.process_time(), time.perf_counter()
        while (text := await line()) != "END":
            if not text:
                raise RuntimeError("the emitter stopped before it finished")
        # Late frames are late, not lost: wait for them (within reason).
        deadline = time.perf_counter() + GRACE_SECONDS
        while time.perf_counter() < deadline and not done():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        used = (
            web_cpu(daphne_pids) - web,
            time.process_time() - own,
            time.perf_counter() - started,
        )
    finally:
        await emitter.wait()
    if emitter.returncode != 0:
        raise RuntimeError(f"the emitter failed:\n{(await errors).decode()[-3000:]}")
    return used


async def measure_step(
    clients: Clients,
    size: int,
    env: dict[str, str],
    events: int,
    rate: float,
    hot_events: int,
    daphne_pids: list[int],
) -> dict:
    connect_seconds = await clients.grow_to(size)
    await asyncio.sleep(1.0)
    own_ids = clients.agent_ids[:size]
    own = set(own_ids)
    spec = {"agents": own_ids, "hot": clients.hot_id}
    step: dict = {"clients": size, "connect_seconds": connect_seconds}
    for phase, count, per_second in (
        ("pubsub", events, rate),
        ("own_room", events, rate),
        ("shared_room", hot_events, shared_rate(rate, size)),
    ):
        clients.received.clear()
        pubsub_received: list[tuple[float, str]] = []
        listener = None
        if phase == "pubsub":
            ready = asyncio.Event()
            listener = asyncio.create_task(
                pubsub_listener(env["REDIS_URL"], pubsub_received, ready)
            )
            await asyncio.wait_for(ready.wait(), 10)
        expected = count * size if phase == "shared_room" else count
        arrived = pubsub_received if phase == "pubsub" else clients.received
        web_cpu, client_cpu, seconds = await run_phase(
            phase,
            {**spec, "count": count, "rate": per_second},
            env,
            daphne_pids,
            lambda arrived=arrived, expected=expected: len(arrived) >= expected,
        )
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            figures = summary(latencies_ms(pubsub_received, lambda agent: True), count)
        elif phase == "own_room":
            figures = summary(latencies_ms(clients.received, own.__contains__), count)
        else:
            figures = summary(
                latencies_ms(clients.received, lambda agent: agent == clients.hot_id),
                count * size,
            )
        deliveries = max(1, figures["deliveries"])
        figures["web_cpu_ms_per_delivery"] = 1000 * web_cpu / deliveries
        figures["client_cpu_ms_per_delivery"] = 1000 * client_cpu / deliveries
        figures["seconds"] = seconds
        step[phase] = figures
    return step


async def run_clients(urls, token, agent_ids, hot_id, sizes, env, args, daphne_pids) -> list[dict]:
    clients = Clients(urls, token, agent_ids, hot_id)
    results = []
    try:
        for size in sizes:
            step = await measure_step(
                clients, size, env, args.events, args.rate, args.hot_events, daphne_pids
            )
            step["web_rss_mib"] = sum(rss_mib(pid) or 0 for pid in daphne_pids)
            step["client_rss_mib"] = rss_mib(os.getpid())
            results.append(step)
            step["closed_sockets"] = len(clients.closed)
            own, shared = step["own_room"], step["shared_room"]
            print(
                f"  {size} clients: own room p99 {own['p99_ms']:.1f} ms, "
                f"shared room p99 {shared['p99_ms']:.1f} ms"
                + (
                    f"; {len(clients.closed)} sockets closed by the server "
                    f"(codes {sorted(set(map(str, clients.closed)))})"
                    if clients.closed
                    else ""
                ),
                flush=True,
            )
    finally:
        await clients.close()
    return results


# --- main ---------------------------------------------------------------------------------


def create_agents(count: int) -> tuple[list[str], str, str]:
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    from agents.models import AIAgent

    owner = get_user_model().objects.create_user(BENCH_USER, password=None)
    agents = AIAgent.objects.bulk_create(
        AIAgent(owner=owner, name=f"watched {i}", agent_type="demo", configuration={"steps": 2})
        for i in range(count + 1)
    )
    ids = [str(agent.pk) for agent in agents]
    return ids[1:], ids[0], str(AccessToken.for_user(owner))


def plot(path: Path, results: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["clients"] for r in results]
    figure, axes = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for index, (key, label, marker) in enumerate(
        (
            ("shared_room", "shared room (every client gets each event)", "o"),
            ("own_room", "own room (one client per event)", "s"),
            ("pubsub", "raw Redis pub/sub, one subscriber", "x"),
        )
    ):
        color = f"C{index}"
        axes.plot(
            sizes,
            [r[key]["p99_ms"] for r in results],
            f"{marker}-",
            color=color,
            label=f"{label}: p99",
        )
        axes.plot(
            sizes,
            [r[key]["p50_ms"] for r in results],
            f"{marker}--",
            color=color,
            alpha=0.45,
            label="p50",
        )
    axes.axhline(TARGET_P99_MS, color="grey", linewidth=0.8, linestyle="--", label="target p99")
    axes.set_yscale("log")
    axes.set_xlabel("connected WebSocket clients (one daphne)")
    axes.set_ylabel("emit -> client, ms")
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clients", default="50,200", help="client counts, ascending (50,200); e.g. 1000"
    )
    parser.add_argument("--events", type=int, default=200, help="events per phase (200)")
    parser.add_argument("--rate", type=float, default=50, help="events per second (50)")
    parser.add_argument("--hot-events", type=int, default=10, help="events in the shared room (10)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--json", type=Path, help="append the figures to this JSON file")
    parser.add_argument("--plot", type=Path, help="draw latency against clients into this PNG")
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="measure nothing: draw --plot from the last run recorded in --json",
    )
    parser.add_argument(
        "--web-processes",
        type=int,
        default=1,
        help="daphne processes the clients are spread over, one port each (default 1)",
    )
    parser.add_argument(
        "--profile", help="write py-spy samples of the first daphne (GIL holder) here"
    )
    parser.add_argument("--emit", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plot_only:
        if not (args.json and args.plot):
            parser.error("--plot-only needs --json and --plot")
        records = [
            r for r in json.loads(args.json.read_text()) if r["benchmark"] == "event_latency"
        ]
        plot(args.plot, records[-1]["results"], f"Event latency, {records[-1]['machine']['date']}")
        print(f"plot: {args.plot}")
        return
    if args.emit:
        spec = json.loads(args.emit)
        emit(spec["phase"], spec["agents"], spec["hot"], spec["count"], spec["rate"])
        return
    try:
        sizes = sorted({int(part) for part in args.clients.split(",") if part.strip()})
    except ValueError:
        parser.error("--clients wants numbers, e.g. 10,100,1000")
    if (
        not sizes
        or sizes[0] < 1
        or args.events < 1
        or args.rate <= 0
        or args.hot_events < 1
        or args.web_processes < 1
    ):
        parser.error(
            "need clients >= 1, --events >= 1, --rate > 0, --hot-events >= 1, --web-processes >= 1"
        )
    largest = sizes[-1]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * largest + 1000  # this process's sockets, then daphne's, inherited
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
        if min(wanted, hard) < wanted:
            parser.error(f"open file limit {hard} is too low for {largest} clients")

    about = machine()
    load = load_average()
    cap = str(largest + 10)
    with bench_database(args.postgres) as database_url, redis_database(args.redis) as redis_url:
        setup_django(database_url, redis_url, WS_MAX_CONNECTIONS_PER_USER=cap)
        agent_ids, hot_id, token = create_agents(largest)
        daphnes = [
            start_daphne(WS_MAX_CONNECTIONS_PER_USER=cap, DEBUG="0")
            for _ in range(args.web_processes)
        ]
        daphne_pids = [daphne.popen.pid for daphne, _ in daphnes]
        env = bench_env(database_url, redis_url, WS_MAX_CONNECTIONS_PER_USER=cap)
        spy = None
        if args.profile:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(daphne_pids[0]),
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--gil",
                    "--nonblocking",
                    "--output",
                    args.profile,
                    "--duration",
                    "3000",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            ports = [port for _, port in daphnes]
            print(
                f"daphne on {', '.join(map(str, ports))}; "
                f"measuring {', '.join(map(str, sizes))} clients",
                flush=True,
            )
            results = asyncio.run(
                run_clients(
                    [f"ws://127.0.0.1:{port}/ws/agents/" for port in ports],
                    token,
                    agent_ids,
                    hot_id,
                    sizes,
                    env,
                    args,
                    daphne_pids,
                )
            )
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            for daphne, _ in daphnes:
                daphne.stop()
                complaints = [
                    line
                    for line in daphne.output().splitlines()
                    if "WARNING" in line or "ERROR" in line or "Traceback" in line
                ]
                if complaints:
                    print(f"daphne logged {len(complaints)} warnings or errors, the last ones:")
                    print("\n".join(complaints[-10:]))
                daphne.remove_log()

    print(f"\nEvent latency, {about['date']}")
    print(
        f"{about['cpu']}, {about['nproc']} cores, {about['memory']} RAM; Python {about['python']}, "
        f"PostgreSQL {about['postgresql']}, Redis {about['redis']}; load average {' '.join(load)}"
    )
    print(
        f"daphne processes: {args.web_processes}, the clients spread evenly over them; "
        f"clients in one process; {args.events} events at {args.rate:g}/s per phase; "
        f"{args.hot_events} in the shared room at "
        + ", ".join(f"{shared_rate(args.rate, size):g}/s" for size in sizes)
        + f" (at most {SHARED_FRAMES_PER_SECOND} frames/s)\n"
    )
    rows = []
    for step in results:
        for key, label in (
            ("pubsub", "raw Redis pub/sub"),
            ("own_room", "own room, via emitter"),
            ("shared_room", "shared room, via emitter"),
        ):
            figures = step[key]
            rows.append(
                [
                    step["clients"],
                    label,
                    f"{figures['deliveries']}/{figures['expected']}",
                    f"{figures['p50_ms']:.1f} ms",
                    f"{figures['p95_ms']:.1f} ms",
                    f"{figures['p99_ms']:.1f} ms",
                    f"{figures['max_ms']:.1f} ms" if figures["max_ms"] is not None else "-",
                    ""
                    if key == "pubsub"
                    else "met"
                    if figures["p99_ms"] <= TARGET_P99_MS
                    else "missed",
                    f"{figures['web_cpu_ms_per_delivery']:.2f} ms",
                    f"{figures['client_cpu_ms_per_delivery']:.2f} ms",
                    f"{step['web_rss_mib']:.0f} MiB" if key == "pubsub" else "",
                ]
            )
    print_table(
        [
            "clients",
            "path",
            "delivered",
            "p50",
            "p95",
            "p99",
            "max",
            "p99 target",
            "daphne CPU/frame",
            "client CPU/frame",
            "web RSS",
        ],
        rows,
    )
    print(
        "\nconnect + subscribe: "
        + ", ".join(f"{s['clients']} in {s['connect_seconds']:.1f} s" for s in results)
        + f"; client process RSS {results[-1]['client_rss_mib']:.0f} MiB"
    )
    if args.plot:
        plot(args.plot, results, f"Event latency, {about['date']}")
        print(f"plot: {args.plot}")
    if args.json:
        append_results(
            args.json,
            {
                "benchmark": "event_latency",
                "machine": about,
                "load": load,
                "events": args.events,
                "rate": args.rate,
                "hot_events": args.hot_events,
                "web_processes": args.web_processes,
                "results": results,
            },
        )


if __name__ == "__main__":
    main()
