"""``asm worker`` in a subprocess (the real entry point, this checkout's code), so a kill is a
real kill: no graceful shutdown, no flush, activities and sticky workflow caches gone.

Used by the chaos tests and by ``bench/limits.py`` (a fleet of workers against one server).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: A cold interpreter importing the worker on a loaded two-core machine: a safety net only.
START_TIMEOUT_S = 120


class WorkerProcess:
    """One worker for ``address``, ``database_url`` and ``task_queue``; ``env`` adds to (or
    overrides) its environment, and may be changed before each :meth:`start`."""

    def __init__(self, address: str, database_url: str, task_queue: str, **env: str) -> None:
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
            ),
            "ASM_TEMPORAL_ADDRESS": address,
            "ASM_DATABASE_URL": database_url,
            "ASM_TASK_QUEUE": task_queue,
            **env,
        }
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        """Start it and wait for its "worker on" line."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent_session_manager.cli",
            "worker",
            env=self.env,
            cwd=str(REPO),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT_S)
        if b"worker on" not in line:
            rest = await asyncio.wait_for(self.proc.stdout.read(4000), 5)
            raise RuntimeError(f"the worker did not start: {(line + rest).decode()!r}")
        # Drained from now on, or a chatty worker would block on a full pipe.
        self._drain = asyncio.create_task(self._keep(self.proc, self.proc.stdout))

    @staticmethod
    async def _keep(proc: asyncio.subprocess.Process, stream: asyncio.StreamReader) -> bytes:
        data = await stream.read()
        await proc.wait()
        if proc.returncode not in (0, -signal.SIGKILL, -signal.SIGTERM):
            # A worker that died on its own is why a run did not finish: say so.
            tail = data[-2000:].decode(errors="replace")
            print(f"worker {proc.pid} exited {proc.returncode}: {tail}", file=sys.stderr)
        return data

    async def kill9(self) -> None:
        """SIGKILL, and wait until it is gone."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await self._drained()

    async def stop(self) -> None:
        """SIGTERM (SIGKILL after 20 s), if it still runs."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._drained()

    async def _drained(self) -> None:
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await self._drain
            self._drain = None


@contextlib.asynccontextmanager
async def worker_fleet(workers: list[WorkerProcess]) -> AsyncIterator[list[WorkerProcess]]:
    """``workers`` started together, and stopped however the block ends."""
    try:
        await asyncio.gather(*(w.start() for w in workers))
        yield workers
    finally:
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
