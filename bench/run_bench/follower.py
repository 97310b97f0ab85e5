"""A live event tail of a session, timing when each event reaches a reader."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import aclosing

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.events import Event


class Follower:
    """One live ``stream_events`` tail of a session, recording when each event was seen."""

    def __init__(self, client: SessionClient, session_id: str, after_seq: int, types: list[str]):
        self.seen: dict[str, list[tuple[float, Event]]] = {}
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(client, session_id, after_seq, types))

    async def _run(
        self, client: SessionClient, session_id: str, after_seq: int, types: list[str]
    ) -> None:
        stream: AsyncIterator[Event] = client.stream_events(
            session_id, after_seq, types=types, follow=True
        )
        async with aclosing(stream) as events:  # type: ignore[type-var]
            async for event in events:
                now = time.perf_counter()
                self.seen.setdefault(event.run_id or "", []).append((now, event))
                self._changed.set()

    async def first(self, run_id: str, within: float) -> tuple[float, Event]:
        """(perf_counter when seen, event) of the first event of ``run_id``."""
        async with asyncio.timeout(within):
            while run_id not in self.seen:
                if self._task.done():
                    self._task.result()  # surface the follower's failure
                    raise RuntimeError("follower stopped")
                self._changed.clear()
                await self._changed.wait()
        return self.seen[run_id][0]

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
