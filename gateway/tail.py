"""One live tail per gateway process, shared by every event stream it serves.

A stream used to read the store itself on every wake-up: with 200 streams that is 200 reads
per wake-up, more CPU than the machine has and more connections than the pool. Here one
reader task per process (per store) watches every session some stream follows and, when the
store's hub wakes (PostgreSQL ``LISTEN/NOTIFY``, SQLite polling), reads the new events of all
woken sessions in one query and hands each stream the same :class:`Batch`.

Nothing here is needed to resume: a stream keeps its own cursor (the last seq it sent) and a
batch says exactly which seqs it covers (``after < seq <= upto``, every event of the session
in that range: seqs are gap-free). A stream sends only events past its cursor and, when a
batch starts past its cursor (it joined while the reader was ahead, or fell behind and its
backlog was dropped), reads the missing range from the store itself — the only direct reads
left, for catching up. So every event is sent once and in order whatever the timing, and
several gateway processes each run their own reader over the same store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from dataclasses import dataclass, field

from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.events import Event
from agent_session_manager.store import EventStore, Watch

log = logging.getLogger("gateway")

#: Events read per session per wake-up at most (more: the reader reads again at once).
PAGE = 500
#: Sessions per query (keeps statements well under SQLite's bound-parameter limit).
_CHUNK = 100
#: Batches a stream may have waiting; past that it is dropped and the stream re-reads.
_BACKLOG = 64
#: How long the reader retries a failing store before failing its streams (they resume).
_GIVE_UP_SECONDS = 30.0


def sse_message(event: Event) -> bytes:
    """The event as one Server-Sent-Events message (``id`` is its seq)."""
    return b"id: %d\ndata: %s\n\n" % (event.seq, event.model_dump_json().encode())


@dataclass(frozen=True, slots=True)
class Batch:
    """Every event of the session with ``after < seq <= upto``, in seq order, and each one's
    SSE message: encoded once by the reader, the same bytes for every stream that sends it."""

    after: int
    upto: int
    events: list[Event]
    messages: list[bytes]


class Follower:
    """One stream's inbox: batches from the shared reader, or an error that ends it."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._pending: deque[Batch] = deque()
        self._ready = asyncio.Event()
        #: Batches were dropped (a slow client): the stream must re-read from its cursor.
        self.lagged = False
        self.error: AsmError | None = None

    def push(self, batch: Batch) -> None:
        if len(self._pending) >= _BACKLOG:
            # Bounded memory per stream; the store still has everything.
            self._pending.clear()
            self.lagged = True
        else:
            self._pending.append(batch)
        self._ready.set()

    def fail(self, exc: AsmError) -> None:
        self.error = exc
        self._ready.set()

    async def take(self, seconds: float) -> list[Batch] | None:
        """The waiting batches ([] when only ``lagged``/``error`` changed); None on timeout."""
        if not self._ready.is_set():
            try:
                async with asyncio.timeout(seconds):
                    await self._ready.wait()
            except TimeoutError:
                return None
        self._ready.clear()
        batches = list(self._pending)
        self._pending.clear()
        return batches


@dataclass(eq=False)
class _Channel:
    """The reader's position in one session and the streams following it."""

    followers: set[Follower] = field(default_factory=set)
    #: The seq the reader has read up to; None until the channel's watch is set up.
    head: int | None = None
    watch: Watch | None = None
    starting: bool = False


class SharedTail:
    """The process's reader over ``store``: :meth:`join` a session, take batches, :meth:`leave`."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._channels: dict[str, _Channel] = {}
        self._dirty: set[str] = set()
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def sessions(self) -> int:
        return len(self._channels)

    async def join(self, session_id: str) -> Follower:
        """Follow ``session_id`` from now on (events the stream has not read yet are its own
        catch-up read's business: batches start wherever the reader is)."""
        follower = Follower(session_id)
        channel = self._channels.get(session_id)
        if channel is None:
            channel = self._channels[session_id] = _Channel()
        channel.followers.add(follower)
        if not channel.starting:
            # The first follower sets the channel up; later ones only add themselves (until
            # the reader starts, their catch-up reads cover them).
            channel.starting = True
            try:
                # Watch first, then take the head: anything committed after the head was
                # read wakes the watch, anything before it is the streams' catch-up.
                channel.watch = await self._store.watch(session_id, self._woken)
                channel.head = await self._store.last_seq(session_id)
                self._woken(session_id)
            except BaseException as exc:
                self.leave(follower)
                # Streams that joined meanwhile have no reader: they end and resume.
                failed = exc if isinstance(exc, AsmError) else None
                self._fail(
                    channel, failed or error("storage_read_failed", "could not start the tail")
                )
                if self._channels.get(session_id) is channel:
                    del self._channels[session_id]
                    if channel.watch is not None:
                        self._store.unwatch(channel.watch)
                raise
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="asm-gateway-shared-tail"
            )
        return follower

    def leave(self, follower: Follower) -> None:
        channel = self._channels.get(follower.session_id)
        if channel is None:
            return
        channel.followers.discard(follower)
        if not channel.followers:
            del self._channels[follower.session_id]
            if channel.watch is not None:
                self._store.unwatch(channel.watch)

    def _woken(self, session_id: str) -> None:
        self._dirty.add(session_id)
        self._kick.set()

    async def _run(self) -> None:
        failing_since: float | None = None
        loop = asyncio.get_running_loop()
        while self._channels:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._store.watch_interval):
                    await self._kick.wait()
            if not self._kick.is_set():
                # No wake-up for a while: re-read everything (the listener may be down).
                self._dirty.update(self._channels)
            self._kick.clear()
            dirty, self._dirty = self._dirty, set()
            try:
                await self._read(dirty)
                failing_since = None
            except Exception as exc:  # the reader must outlive any one failed read
                # Read again later; the streams wait (with keepalives) meanwhile.
                self._dirty |= dirty
                failing_since = failing_since or loop.time()
                log.warning("shared event tail read failed: %s", exc)
                if loop.time() - failing_since > _GIVE_UP_SECONDS:
                    failed = exc if isinstance(exc, AsmError) else None
                    self._fail_all(failed or error("storage_read_failed", "the tail is failing"))
                    failing_since = None
                await asyncio.sleep(0.2)
                self._kick.set()
        self._task = None

    async def _read(self, dirty: set[str]) -> None:
        live: dict[str, tuple[_Channel, int]] = {}
        for sid in dirty:
            channel = self._channels.get(sid)
            if channel is None or channel.head is None or channel.watch is None:
                continue
            if channel.watch.closed:
                self._fail(channel, error("stream_closed", "the gateway's store closed"))
                continue
            live[sid] = (channel, channel.head)
        sids = list(live)
        for start in range(0, len(sids), _CHUNK):
            heads = {sid: live[sid][1] for sid in sids[start : start + _CHUNK]}
            found = await self._store.newer_events(heads, PAGE)
            for sid, events in found.items():
                channel, head = live[sid]
                if self._channels.get(sid) is not channel or channel.head != head:
                    continue  # left (and maybe re-joined) while reading: its next read covers it
                channel.head = events[-1].seq
                batch = Batch(head, channel.head, events, [sse_message(e) for e in events])
                for follower in channel.followers:
                    follower.push(batch)
                if len(events) >= PAGE:
                    self._woken(sid)  # more waiting: read on at once

    def _fail(self, channel: _Channel, exc: AsmError) -> None:
        for follower in channel.followers:
            follower.fail(exc)

    def _fail_all(self, exc: AsmError) -> None:
        for channel in self._channels.values():
            self._fail(channel, exc)


_TAILS: weakref.WeakKeyDictionary[EventStore, SharedTail] = weakref.WeakKeyDictionary()


def shared_tail(store: EventStore) -> SharedTail:
    """The one shared tail of ``store`` in this process."""
    tail = _TAILS.get(store)
    if tail is None:
        tail = _TAILS[store] = SharedTail(store)
    return tail
