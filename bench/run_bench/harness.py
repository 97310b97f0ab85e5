"""The benchmark's harness: one dev server, one event store, both workers, and timed phases."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from agent_session_manager.activities.providers import discover
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import MockScript, MockText, RunResult, SessionSpec
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.store import EventStore, open_store, upgrade
from agent_session_manager.worker.dev_server import start_dev_server
from agent_session_manager.worker.settings import Settings
from agent_session_manager.worker.worker import serve
from run_bench.bare import BenchChild, BenchParent, BenchRun, BenchSession, bench_noop
from run_bench.bare_store import BareStore, session_created
from run_bench.machine import server_pids

T = TypeVar("T")

#: The no-delay, one-step script of the latency and throughput phases.
FAST = MockScript(steps=[MockText(text="ok")])


def log(msg: str) -> None:
    print(f"[bench/runs {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def bounded(coro: Awaitable[T], seconds: float, what: str) -> T:
    try:
        async with asyncio.timeout(seconds):
            return await coro
    except TimeoutError:
        raise TimeoutError(f"{what} did not finish within {seconds:g}s") from None


def temporalio_version() -> str:
    try:
        from importlib.metadata import version

        return version("temporalio")
    except Exception:
        return "?"


class Harness:
    """Both sides on one dev server: our worker (``serve``) and the bare one, their clients."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env: WorkflowEnvironment | None = None
        self.store: EventStore | None = None
        self.client: SessionClient | None = None
        self.temporal: Client | None = None
        self.workers = contextlib.AsyncExitStack()
        self.tmp = tempfile.TemporaryDirectory(prefix="asm-bench-runs-")
        self.bare_tq = f"bench-bare-{uuid.uuid4().hex[:8]}"
        self.ours_tq = f"bench-asm-{uuid.uuid4().hex[:8]}"
        self.out: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.server_pids: list[int] = []
        self.address = ""  # the dev server's frontend, for worker processes
        self.database_url = ""

    # --- setup / teardown -------------------------------------------------------------------

    async def setup(self) -> None:
        url = self.args.database_url or f"sqlite+aiosqlite:///{Path(self.tmp.name) / 'asm.db'}"
        self.database_url = url
        t = time.perf_counter()
        extra = [a for kv in self.args.dynamic_config for a in ("--dynamic-config-value", kv)]
        self.env = await bounded(
            start_dev_server(home=None, ui=False, extra_args=extra), 120, "dev server start"
        )
        log(f"dev server up in {time.perf_counter() - t:.1f}s")
        self.server_pids = server_pids()
        await bounded(upgrade(url), 120, "store migration")
        self.store = await bounded(open_store(url), 60, "store open")
        self.temporal = self.env.client
        self.address = self.temporal.service_client.config.target_host
        assert self.temporal.data_converter is data_converter or (
            self.temporal.data_converter.payload_converter_class
            is data_converter.payload_converter_class
        ), "the dev server client must use core.temporal.data_converter"
        settings = Settings()
        await self.workers.enter_async_context(
            serve(
                self.temporal,
                self.store,
                task_queue=self.ours_tq,
                providers=discover(),
                secrets={},
                settings=settings,
            )
        )
        bare = Worker(
            self.temporal,
            task_queue=self.bare_tq,
            workflows=[BenchParent, BenchChild, BenchSession, BenchRun],
            activities=[bench_noop, BareStore(self.store).run],
        )
        await self.workers.enter_async_context(bare)
        self.client = SessionClient(self.temporal, self.store, task_queue=self.ours_tq)
        self.out["setup"] = {
            "store": self.store.display_url if self.args.database_url else "sqlite (temp dir)",
            "backend": self.store.backend,
            "heartbeat_throttle_seconds": settings.heartbeat_throttle_seconds,
            "dev_server_pids_for_cpu": self.server_pids,
            "dynamic_config": self.args.dynamic_config,
            "python": platform.python_version(),
            "temporalio": temporalio_version(),
        }

    async def teardown(self) -> dict[str, Any]:
        report: dict[str, Any] = {}
        t = time.perf_counter()
        try:
            await bounded(self.workers.aclose(), 40, "worker shutdown")
        except Exception as exc:
            report.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")
        if self.store is not None:
            try:
                await bounded(self.store.close(), 30, "store close")
            except Exception as exc:
                report.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")
        if self.env is not None:
            try:
                await bounded(self.env.shutdown(), 30, "dev server shutdown")
            except Exception as exc:
                report.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            self.tmp.cleanup()
        report["seconds"] = round(time.perf_counter() - t, 2)
        return report

    # --- building blocks --------------------------------------------------------------------

    @property
    def c(self) -> SessionClient:
        assert self.client is not None
        return self.client

    @property
    def s(self) -> EventStore:
        assert self.store is not None
        return self.store

    @property
    def t(self) -> Client:
        assert self.temporal is not None
        return self.temporal

    async def new_session(self, **spec: Any) -> str:
        fields: dict[str, Any] = {"agent_id": "bench", "provider": "mock", "mock": FAST}
        fields.update(spec)
        view = await bounded(self.c.start_session(SessionSpec(**fields)), 60, "start_session")
        return view.session_id

    async def ours_run(self, sid: str, prompt: str = "hi") -> RunResult:
        result = await bounded(self.c.run(sid, prompt), self.args.op_timeout, "run")
        if result.status is not RunStatus.COMPLETED:
            raise RuntimeError(f"run {result.run_id} ended {result.status.value}: {result.error}")
        return result

    async def bare_run(self) -> None:
        wid = f"bench-parent-{uuid.uuid4().hex[:16]}"
        out = await bounded(
            self.t.execute_workflow(BenchParent.run, "x", id=wid, task_queue=self.bare_tq),
            self.args.op_timeout,
            "bare workflow",
        )
        assert out == "x"

    async def bare_limited(self, sem: asyncio.Semaphore) -> None:
        async with sem:
            await self.bare_run()

    async def bare_session(self, task_queue: str | None = None) -> str:
        """Start a session-shaped bare parent (its session row written first, as ours)."""
        sid = f"bench-bare-{uuid.uuid4().hex[:16]}"
        await self.s.record(session_created(sid))
        await bounded(
            self.t.start_workflow(
                BenchSession.run,
                sid,
                id=f"bench-session-{sid}",
                task_queue=task_queue or self.bare_tq,
            ),
            60,
            "bare session start",
        )
        return sid

    async def bare_session_run(self, sid: str) -> None:
        """One run of a session-shaped bare parent: the update, then wait on the child."""

        async def go() -> None:
            handle = self.t.get_workflow_handle(f"bench-session-{sid}")
            while True:
                try:
                    child_id = await handle.execute_update(BenchSession.run_update, sid)
                    break
                except RPCError as exc:
                    # A long bare entity replaying after eviction can time its workflow task
                    # out on a loaded machine; the server retries the task: so do we.
                    if "Workflow Task in failed state" not in exc.message:
                        raise
                    await asyncio.sleep(0.05)
            await self.t.get_workflow_handle(child_id).result()

        await bounded(go(), self.args.op_timeout, "bare session run")

    async def end_bare_sessions(self, sids: list[str]) -> None:
        for sid in sids:
            with contextlib.suppress(Exception):
                await self.t.get_workflow_handle(f"bench-session-{sid}").signal(BenchSession.end)

    async def phase(self, name: str, fn: Callable[[Harness], Awaitable[dict[str, Any]]]) -> None:
        """Run one phase into ``out[name]``; a failure is recorded and the next phase runs."""
        if self.args.phases and name not in self.args.phases.split(","):
            return
        log(f"phase {name} …")
        t = time.perf_counter()
        try:
            self.out[name] = await fn(self)
        except Exception as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            self.out[name] = {"error": self.errors[name]}
            log(f"phase {name} FAILED: {exc}\n{traceback.format_exc()}")
        self.out.setdefault("phase_seconds", {})[name] = round(time.perf_counter() - t, 2)
        log(f"phase {name} done in {time.perf_counter() - t:.1f}s")

    def bytecode_cache(self) -> None:
        """Let the workflow sandbox load cached bytecode, as an installed package would.

        The sandbox re-imports each workflow's module for every new workflow instance. With
        ``PYTHONDONTWRITEBYTECODE=1`` and a source checkout there is no ``.pyc``, so every
        instance would compile its module from source (a 900-line module: ~7 ms per bare
        workflow, twice per bare run; agent_run.py: ~1.5 ms per run), which skews the
        comparison. A pip-installed worker (the Dockerfile) has compiled bytecode, so we give
        the sandbox a bytecode cache in our temp dir (never in the repository).
        """
        if self.args.no_bytecode_cache:
            return
        sys.pycache_prefix = str(Path(self.tmp.name) / "pycache")
        sys.dont_write_bytecode = False
