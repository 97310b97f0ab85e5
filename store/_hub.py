"""Wake-ups for followers: PostgreSQL ``LISTEN/NOTIFY``, SQLite polling.

A hub never carries events, only "session S has events up to seq N": a woken follower reads
from its own cursor. That makes every wake-up idempotent and the protocol simple:

1. subscribe (the hub is live from here on),
2. clear the subscription, read after the cursor, yield,
3. wait for a wake-up (or a safety timeout), go to 2.

An event committed after step 2's read started wakes step 3, so nothing is missed between
"read" and "listen"; a (re)connect of the PostgreSQL listener wakes everyone for a catch-up
read, so nothing is missed while it was down either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Coroutine
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_session_manager.store._schema import COUNTERS

log = logging.getLogger("store")

#: The NOTIFY channel; payload ``"<last_seq>:<session_id>"``. Channels are per database.
CHANNEL = "asm_events"


class Subscription:
    """One follower's interest in one session."""

    __slots__ = ("_event", "_on_wake", "closed", "session_id")

    def __init__(self, session_id: str, on_wake: Callable[[str], None] | None = None) -> None:
        self.session_id = session_id
        self._event = asyncio.Event()
        self._on_wake = on_wake
        self.closed = False

    def clear(self) -> None:
        """Forget past wake-ups: call right before reading."""
        self._event.clear()

    def wake(self) -> None:
        self._event.set()
        if self._on_wake is not None:
            # A shared reader watching many sessions learns which one woke.
            self._on_wake(self.session_id)

    async def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a wake-up; False if none came."""
        if self._event.is_set():
            return True
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


class Hub:
    """Subscriptions by session; subclasses decide where wake-ups come from."""

    #: How long a subscriber waits without a wake-up before re-reading anyway.
    safety_interval: float = 5.0

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        self._closed = False

    @property
    def wait_interval(self) -> float:
        """Upper bound for one wait of a subscriber (shorter while degraded)."""
        return self.safety_interval

    async def subscribe(
        self, session_id: str, on_wake: Callable[[str], None] | None = None
    ) -> Subscription:
        sub = Subscription(session_id, on_wake)
        self._subs.setdefault(session_id, set()).add(sub)
        await self._started()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.session_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.session_id]

    def publish(self, session_id: str) -> None:
        """Wake every subscriber of ``session_id``."""
        for sub in self._subs.get(session_id, ()):
            sub.wake()

    def publish_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.wake()

    @property
    def sessions(self) -> list[str]:
        return list(self._subs)

    async def _started(self) -> None:
        """Make sure wake-ups flow before the first read (overridden)."""

    async def close(self) -> None:
        self._closed = True
        for subs in self._subs.values():
            for sub in subs:
                sub.closed = True
                sub.wake()


def _spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coro, name=name)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class PollingHub(Hub):
    """SQLite: one background poller per store reads the counters of subscribed sessions.

    One query per interval serves every follower of the store. The interval is
    ``min_interval`` while events flow and for ``idle_after`` seconds after the last one (a
    model's token stream pauses for tens of milliseconds between bursts: backing off at once
    would add that much delay to the next burst), then backs off to ``max_interval``; any
    change, new subscription or local write resets it. Writes made through the same store wake
    followers at once (``publish``); polling is for writers in other processes (the worker).

    The query runs only when ``PRAGMA data_version`` says another connection committed since
    the last one (or once per ``safety_interval``): that pragma, on a plain ``sqlite3``
    connection of the hub's own, costs microseconds, where the query (through aiosqlite's
    thread and SQLAlchemy) costs milliseconds of CPU, which at one poll per 10 ms was a
    quarter of a core spent by every process following a SQLite store.
    """

    safety_interval = 1.0

    def __init__(
        self,
        reader: AsyncEngine,
        *,
        min_interval: float = 0.010,
        max_interval: float = 0.050,
        idle_after: float = 0.5,
    ) -> None:
        super().__init__()
        self._reader = reader
        self._min = min_interval
        self._max = max_interval
        self._idle_after = idle_after
        self._interval = min_interval
        self._last_change = 0.0
        self._known: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        path = reader.url.database
        #: A plain database file path (not ``:memory:``, not a ``file:`` URI): watchable.
        self._path = path if path and path != ":memory:" and not path.startswith("file:") else None
        self._versions: sqlite3.Connection | None = None
        self._version: int | None = None
        self._queried_at = 0.0

    async def _started(self) -> None:
        self._reset()
        if self._task is None or self._task.done():
            self._task = _spawn(self._run(), "asm-store-poller")

    def publish(self, session_id: str) -> None:
        super().publish(session_id)
        self._reset()

    def _reset(self) -> None:
        self._interval = self._min
        self._last_change = asyncio.get_running_loop().time()

    async def _run(self) -> None:
        failures = 0
        while not self._closed and self._subs:
            try:
                await self._poll_once()
                failures = 0
            except Exception as exc:  # keep polling: followers re-read on their safety timeout
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("event poller failed (%d in a row): %s", failures, exc)
                await asyncio.sleep(min(1.0, self._max * failures))
            await asyncio.sleep(self._interval)
        self._task = None

    def _unchanged(self) -> bool:
        """Nothing was committed since the last query (False when unsure); else remembers the
        version the next query will have seen."""
        if self._path is None:
            return False
        try:
            if self._versions is None:
                # Autocommit, no busy wait: the pragma never blocks the event loop for long.
                self._versions = sqlite3.connect(
                    self._path, timeout=0, isolation_level=None, check_same_thread=False
                )
            version = self._versions.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            self._version = None
            return False
        now = asyncio.get_running_loop().time()
        if version == self._version and now - self._queried_at < self.safety_interval:
            return True
        # Read before the query: whatever the query misses changes the version again.
        self._version = version
        self._queried_at = now
        return False

    async def _poll_once(self) -> None:
        sessions = self.sessions
        if not sessions:
            return
        if self._unchanged():
            self._idle()
            return
        stmt = sa.select(COUNTERS.c.session_id, COUNTERS.c.last_seq).where(
            COUNTERS.c.session_id.in_(sessions)
        )
        try:
            async with self._reader.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        except BaseException:
            self._version = None  # this version was not read: query again next time
            raise
        changed = False
        for session_id, last_seq in rows:
            if self._known.get(session_id) != last_seq:
                self._known[session_id] = last_seq
                changed = True
                super().publish(session_id)
        for gone in set(self._known) - set(sessions):
            del self._known[gone]
        if changed:
            self._reset()
        else:
            self._idle()

    def _idle(self) -> None:
        if asyncio.get_running_loop().time() - self._last_change > self._idle_after:
            # Back off while idle: 10 ms → 15 → 22 → 34 → 50 ms.
            self._interval = min(self._max, self._interval * 1.5)

    async def close(self) -> None:
        await super().close()
        await _cancel(self._task)
        self._task = None
        if self._versions is not None:
            self._versions.close()
            self._versions = None


class ListenHub(Hub):
    """PostgreSQL: one dedicated asyncpg connection ``LISTEN``\\ s on :data:`CHANNEL`.

    It reconnects with backoff when the connection drops and, once listening again, wakes
    every subscriber for a catch-up read. While it is down, subscribers re-read every
    ``degraded_interval`` (polling), so a follower never stalls for long.
    """

    safety_interval = 5.0
    degraded_interval = 0.25
    #: How long the first subscriber waits for LISTEN before degrading to polling.
    ready_timeout = 5.0
    #: How often an idle listener checks that its connection is alive.
    keepalive_interval = 15.0

    def __init__(self, connect: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        super().__init__()
        self._connect = connect
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._conn: Any = None

    @property
    def wait_interval(self) -> float:
        return self.safety_interval if self._listening.is_set() else self.degraded_interval

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    async def _started(self) -> None:
        if self._task is None or self._task.done():
            self._task = _spawn(self._run(), "asm-store-listener")
        if not self._listening.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ready_timeout):
                    await self._listening.wait()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        _seq, _, session_id = payload.partition(":")
        self.publish(session_id)

    async def _run(self) -> None:
        delay = 0.05
        while not self._closed:
            lost = asyncio.Event()
            try:
                self._conn = await self._connect()
                self._conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await self._conn.add_listener(CHANNEL, self._on_notify)
                self._listening.set()
                delay = 0.05
                # Anything committed while we were not listening: everyone re-reads.
                self.publish_all()
                while not self._closed and not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.keepalive_interval):
                            await lost.wait()
                    if not lost.is_set():
                        async with asyncio.timeout(self.keepalive_interval):
                            await self._conn.fetchval("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event listener connection failed, retrying in %.2fs: %s", delay, exc)
            finally:
                self._listening.clear()
                await self._close_conn()
            if self._closed:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not conn.is_closed():
                async with asyncio.timeout(2.0):
                    await conn.close()
        except (Exception, asyncio.CancelledError):
            conn.terminate()

    async def close(self) -> None:
        await super().close()
        await _cancel(self._task)
        self._task = None
        await self._close_conn()
