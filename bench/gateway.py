"""Gateway benchmark: 200 SSE clients following 200 sessions through one gateway process.

Three processes, as in a deployment: the gateway (``create_app`` under uvicorn, started here
with ``--serve``), a writer playing the worker (``--write``: appends the sessions' events to
the store, as the provider activities do), and this driver with the 200 clients (plain
asyncio sockets that only split lines and read each message's ``id:`` while streaming; the
JSON is parsed and checked after the run, so the clients' own CPU adds little to the delay
they measure). The gateway learns of new events only from the store's tail (SQLite
polling, PostgreSQL LISTEN/NOTIFY), as it would from a worker. No Temporal calls are involved
in streaming, so the gateway's Temporal client is a lazy one that never connects; the run
path is ``bench/runs.py``'s.

Checks and numbers (one JSON document on stdout; progress on stderr):

* every client receives every event of its session exactly once and in seq order (the SSE
  ``id`` and the event's own ``seq`` agree);
* delay from commit to client: ``receive time - commit time``, where the commit time is when
  the writer's ``append`` returned (the store had committed the transaction; the writer
  reports it per event) and the receive time is when the chunk carrying the event arrived at
  the client: p50/p95/p99/max over events committed while the client was connected (events
  read by a catch-up right after a reconnect are counted separately). The delay from the
  event's ``created_at`` (taken before the writing transaction, so it includes the writer's
  own transaction time) is reported beside it;
* ``--reconnects`` random disconnects (a client drops its connection after a random event and
  reconnects with ``Last-Event-ID``): each client's reassembled transcript is compared
  byte for byte with the store's;
* the gateway's RSS (idle, with streams open, peak) and the load average.

Run: ``.venv/bin/python bench/gateway.py [--sessions 200] [--events 60] [--rate 1000]
[--reconnects 100] [--database-url postgresql+asyncpg://…]`` (about 30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent_session_manager.core.events import EventDraft, EventType  # noqa: E402
from agent_session_manager.store import EventStore, open_store, upgrade  # noqa: E402

TENANT = "bench"
#: Deltas with multi-byte characters, so "byte-identical" means something.
WORDS = ["stream ", "token ", "résumé ", "日本語 ", "🙂 ", "gap-free ", "seq ", "\n"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def session_ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}_{i:04d}" for i in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- the gateway process -------------------------------------------------------------------


async def serve(url: str, port: int) -> None:
    import uvicorn
    from temporalio.client import Client

    from agent_session_manager.client import SessionClient
    from agent_session_manager.core.temporal import data_converter
    from agent_session_manager.gateway import GatewaySettings, create_app

    store = await open_store(url)
    temporal = await Client.connect("127.0.0.1:1", lazy=True, data_converter=data_converter)
    app = create_app(SessionClient(temporal, store), store, GatewaySettings())
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
    )
    await uvicorn.Server(config).serve()
    await store.close()


# --- the driver ----------------------------------------------------------------------------


@dataclass
class Follower:
    session_id: str
    total: int
    drops: list[int]  # drop the connection right after the event with these seqs
    #: Per event received: its seq (from the SSE ``id:``), when its chunk arrived, its JSON,
    #: and when the connection it came on was opened (None: the first connection).
    got: list[tuple[int, float, str, float | None]] = field(default_factory=list)
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)
    duplicates: int = 0
    out_of_order: int = 0


async def _sse_lines(reader: asyncio.StreamReader) -> AsyncIterator[tuple[bytes, float]]:
    """The lines of a chunked ``text/event-stream`` body, each with the time its chunk
    arrived (taken before any parsing: the 200 clients share one process, and the receive
    time must not include the time spent on other clients' chunks that arrived with it)."""
    buf = b""
    while True:
        size_line = await reader.readline()
        now = time.time()
        if not size_line:
            return
        size = int(size_line.strip().split(b";")[0] or b"0", 16)
        if size == 0:
            return
        chunk = await reader.readexactly(size + 2)
        buf += chunk[:-2]
        *lines, buf = buf.split(b"\n")
        for line in lines:
            yield line, now


async def follow(port: int, f: Follower, key: str) -> None:
    """Follow one session to its last event; all the client does while streaming is split
    lines and read the ``id:`` (the seq): the JSON is kept raw and checked afterwards."""
    last = 0
    while last < f.total:
        headers = [f"Authorization: Bearer {key}"]
        if last:
            headers.append(f"Last-Event-ID: {last}")
        reconnected_at = time.time() if last else None
        dropped = False
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            request = "\r\n".join(
                [f"GET /v1/sessions/{f.session_id}/events HTTP/1.1", "Host: bench", *headers]
            )
            writer.write(request.encode() + b"\r\n\r\n")
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            if not head.startswith("HTTP/1.1 200") or "chunked" not in head.lower():
                raise RuntimeError(f"{f.session_id}: {head[:300]!r}")
            data: list[bytes] = []
            kind = b"message"
            seq = 0
            async for line, now in _sse_lines(reader):
                if line.startswith(b"data:"):
                    data.append(line[5:].removeprefix(b" "))
                    continue
                if line.startswith(b"id:"):
                    seq = int(line[3:])
                    continue
                if line.startswith(b"event:"):
                    kind = line[6:].strip()
                    continue
                if line or not data:
                    continue
                raw = b"\n".join(data).decode()
                data = []
                if kind != b"message":
                    # asm-error: the gateway closes the stream; resume like a browser would.
                    f.errors.append(raw[:300])
                    kind = b"message"
                    continue
                if seq <= last:
                    f.duplicates += 1
                    continue
                if seq != last + 1:
                    f.out_of_order += 1
                last = seq
                f.got.append((seq, now, raw, reconnected_at))
                if last >= f.total:
                    break
                if f.drops and seq >= f.drops[0]:
                    f.drops.pop(0)
                    dropped = True
                    break
        finally:
            writer.close()
        if dropped:
            f.reconnects += 1
        elif last < f.total:
            await asyncio.sleep(0.2)  # the stream ended early (an asm-error): reconnect


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


async def write_process(url: str, sids: list[str], events: int, rate: float) -> None:
    """The writer's own process (``--write``), as a worker is: prints its seconds and each
    event's commit time."""
    store = await open_store(url)
    try:
        committed: dict[str, dict[int, float]] = {sid: {} for sid in sids}
        seconds = await write(store, sids, events, rate, committed)
        print(json.dumps({"write_seconds": seconds, "committed": committed}), flush=True)
    finally:
        await store.close()


async def write(
    store: EventStore,
    sids: list[str],
    events: int,
    rate: float,
    committed: dict[str, dict[int, float]],
) -> float:
    """Append ``events`` message_streamed events to every session, ``rate`` per second in
    total, in ticks of 20 ms (one transaction per tick, a slice of the sessions). Each
    event's commit time (``committed[sid][seq]``) is when ``append`` returned, i.e. when the
    store had committed the transaction (the events' ``created_at`` is taken before it)."""
    tick = 0.02
    per_tick = max(1, round(rate * tick))
    queue = [(sid, i) for i in range(1, events + 1) for sid in sids]
    rng = random.Random(7)
    start = time.perf_counter()
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    for offset in range(0, len(queue), per_tick):
        batch = [
            EventDraft(
                id=f"{sid}:{i}",
                session_id=sid,
                run_id=f"run_{sid}",
                attempt=1,
                type=EventType.MESSAGE_STREAMED,
                data={"text": "".join(rng.choices(WORDS, k=3)), "index": 0},
            )
            for sid, i in queue[offset : offset + per_tick]
        ]
        written = await store.append(batch)
        now = time.time()
        for event in written:
            committed[event.session_id][event.seq] = now
        next_at += tick
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    return time.perf_counter() - start


async def rss_sampler(proc: psutil.Process, samples: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            samples.append(proc.memory_info().rss)
        except psutil.Error:
            return
        await asyncio.sleep(0.25)


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="asm-gw-bench-")
    url = args.database_url or f"sqlite+aiosqlite:///{tmp}/asm.db"
    await upgrade(url)
    store = await open_store(url)
    _, key = await store.create_api_key(TENANT, "bench")
    prefix = f"ses_bench_{os.getpid()}"
    sids = session_ids(prefix, args.sessions)
    for sid in sids:
        await store.record_session_tenant(sid, TENANT)

    port = free_port()
    env = os.environ | {
        # One key opens all the streams: its budget is not what is measured here.
        "ASM_GATEWAY_RATE_BURST": "100000",
        "ASM_GATEWAY_RATE_PER_SECOND": "100000",
        "ASM_GATEWAY_MAX_STREAMS_PER_KEY": "100000",
    }
    gateway = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        "--database-url",
        url,
        "--port",
        str(port),
        env=env,
        cwd=ROOT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(
            base_url=base,
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(max_connections=args.sessions + 50, max_keepalive_connections=0),
        ) as http:
            for _ in range(300):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the gateway did not come up")
            proc = psutil.Process(gateway.pid)
            rss_idle = proc.memory_info().rss
            log(f"gateway up on {base} (pid {gateway.pid}, RSS {rss_idle / 2**20:.1f} MiB)")

            rng = random.Random(42)
            drops: dict[int, list[int]] = {}
            for _ in range(args.reconnects):
                client = rng.randrange(args.sessions)
                drops.setdefault(client, []).append(rng.randint(1, args.events - 1))
            followers = [
                Follower(sid, args.events, sorted(set(drops.get(n, []))))
                for n, sid in enumerate(sids)
            ]
            planned = sum(len(f.drops) for f in followers)
            tasks = [asyncio.create_task(follow(port, f, key)) for f in followers]
            await asyncio.sleep(1.0)  # every stream open and waiting before the first event
            samples: list[int] = []
            stop = asyncio.Event()
            sampler = asyncio.create_task(rss_sampler(proc, samples, stop))
            rss_open = proc.memory_info().rss
            cpu_before = sum(proc.cpu_times()[:2])
            load_before = os.getloadavg()
            log(
                f"{len(tasks)} streams open (RSS {rss_open / 2**20:.1f} MiB); writing "
                f"{args.events} events x {args.sessions} sessions at {args.rate:g}/s, "
                f"{planned} reconnects planned"
            )
            t0 = time.perf_counter()
            writer = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--write",
                "--database-url",
                url,
                "--prefix",
                prefix,
                "--sessions",
                str(args.sessions),
                "--events",
                str(args.events),
                "--rate",
                str(args.rate),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
            )
            written = asyncio.create_task(writer.communicate())
            while not written.done():
                await asyncio.sleep(2)
                got = sum(len(f.got) for f in followers)
                log(f"  {got}/{args.sessions * args.events} events delivered")
            wrote = json.loads(written.result()[0])
            wrote_s = wrote["write_seconds"]
            committed = {
                sid: {int(seq): t for seq, t in times.items()}
                for sid, times in wrote["committed"].items()
            }
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
            elapsed = time.perf_counter() - t0
            gateway_cpu = sum(proc.cpu_times()[:2]) - cpu_before
            stop.set()
            await sampler
            load_after = os.getloadavg()
            log(f"all delivered in {elapsed:.1f}s; checking against the store")

            exact = in_order = identical = 0
            live: list[float] = []  # receive - commit, events committed while connected
            live_created: list[float] = []  # receive - created_at (before the transaction)
            catch_up: list[float] = []  # events committed before the reconnect that got them
            for f in followers:
                events = [json.loads(raw) for _, _, raw, _ in f.got]
                seqs = [seq for seq, _, _, _ in f.got]
                if (
                    seqs == list(range(1, args.events + 1))
                    and [e["seq"] for e in events] == seqs
                    and not f.duplicates
                ):
                    exact += 1
                if not f.out_of_order:
                    in_order += 1
                stored = await store.events(f.session_id, 0, limit=args.events + 10)
                want = "".join(e.data["text"] for e in stored).encode()
                if "".join(e["data"].get("text", "") for e in events).encode() == want:
                    identical += 1
                for (seq, received, _, opened), event in zip(f.got, events, strict=True):
                    commit = committed[f.session_id][seq]
                    if opened is not None and commit < opened:
                        catch_up.append(received - commit)
                    else:
                        live.append(received - commit)
                        live_created.append(received - _ts(event["created_at"]))
            reconnects = sum(f.reconnects for f in followers)
            errors = [e for f in followers for e in f.errors]
    finally:
        gateway.terminate()
        try:
            await asyncio.wait_for(gateway.wait(), timeout=10)
        except TimeoutError:
            gateway.kill()
        await store.close()

    def ms(v: float) -> float:
        return round(v * 1000, 1)

    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "backend": store.backend,
        "sessions": args.sessions,
        "events_per_session": args.events,
        "rate_events_per_s": args.rate,
        "write_seconds": round(wrote_s, 2),
        "elapsed_seconds": round(elapsed, 2),
        "clients_every_event_exactly_once": f"{exact}/{args.sessions}",
        "clients_in_order": f"{in_order}/{args.sessions}",
        "transcripts_byte_identical": f"{identical}/{args.sessions}",
        "reconnects": reconnects,
        "stream_errors": {"n": len(errors), "first": errors[:3]},
        "delay_live_ms": {
            "n": len(live),
            "p50": ms(statistics.median(live)) if live else None,
            "p95": ms(pct(live, 95)),
            "p99": ms(pct(live, 99)),
            "max": ms(max(live)) if live else None,
        },
        "delay_live_from_created_at_ms": {
            "n": len(live_created),
            "p50": ms(statistics.median(live_created)) if live_created else None,
            "p99": ms(pct(live_created, 99)),
        },
        "delay_catch_up_ms": {
            "n": len(catch_up),
            "p99": ms(pct(catch_up, 99)) if catch_up else None,
        },
        "p99_target_ms": 250,
        "p99_met": bool(live) and pct(live, 99) <= 0.25,
        # CPU the gateway spent while streaming: on a machine shared with other work, the
        # delay depends on the CPU it got; the cost per event does not.
        "gateway_cpu_seconds": round(gateway_cpu, 2),
        "gateway_cpu_ms_per_event": round(1000 * gateway_cpu / (args.sessions * args.events), 3),
        "gateway_rss_mib": {
            "idle": round(rss_idle / 2**20, 1),
            "streams_open": round(rss_open / 2**20, 1),
            "peak": round(max(samples, default=rss_open) / 2**20, 1),
        },
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--events", type=int, default=60, help="events per session")
    p.add_argument("--rate", type=float, default=1000, help="events per second, all sessions")
    p.add_argument("--reconnects", type=int, default=100)
    p.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        asyncio.run(serve(args.database_url, args.port))
        return
    if args.write:
        sids = session_ids(args.prefix, args.sessions)
        asyncio.run(write_process(args.database_url, sids, args.events, args.rate))
        return
    report = asyncio.run(drive(args))
    print(json.dumps(report, indent=2))
    ok = (
        report["clients_every_event_exactly_once"] == f"{args.sessions}/{args.sessions}"
        and report["transcripts_byte_identical"] == f"{args.sessions}/{args.sessions}"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
