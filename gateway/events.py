"""``/v1/sessions/{id}/events``: the session's events as JSON pages or as Server-Sent Events.

The stream is the store's live tail, read from a cursor: each SSE message's ``id`` is the
event's ``seq``, so a client that reconnects with ``Last-Event-ID`` (browsers' EventSource do
it themselves) or ``?after=`` gets every later event exactly once, from whichever gateway
process answers. Nothing about a stream is kept in the process beyond the open connection.

Messages: the default event type carries one ``Event`` as JSON (its ``type`` inside);
``event: end`` says the session ended and nothing more will come (the client should close,
not reconnect); ``event: asm-error`` carries an error (``{"error": …}``) before the gateway
closes a stream it cannot serve (a store outage): reconnecting with ``Last-Event-ID`` resumes.
A comment line every ``keepalive_seconds`` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.events import Event, EventType
from agent_session_manager.gateway.auth import Principal
from agent_session_manager.gateway.deps import Caller, Gateway, OwnedSession, Parts
from agent_session_manager.gateway.errors import GatewayError
from agent_session_manager.gateway.models import EventPage
from agent_session_manager.gateway.tail import Batch, Follower, shared_tail, sse_message

router = APIRouter(prefix="/v1/sessions/{session_id}/events", tags=["events"])

_SESSION_END = frozenset(
    {EventType.SESSION_COMPLETED, EventType.SESSION_FAILED, EventType.SESSION_CANCELLED}
)
#: How long a stream stays open after the session's end event, for its runs' last events.
_STRAGGLERS_SECONDS = 1.0
#: Events sent in one write at most (a client catching up gets them in pieces of this size).
_BATCH = 500
_Cursor = Annotated[int, Query(ge=0, le=2**63 - 1, description="the last seq you have")]
_RunFilter = Annotated[str | None, Query(max_length=255)]
_Types = Annotated[list[EventType] | None, Query(description="event types (repeatable)")]


@router.get("/page", response_model=EventPage)
async def event_page(
    session_id: OwnedSession,
    gw: Parts,
    after: _Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    run_id: _RunFilter = None,
    types: _Types = None,
    wait: Annotated[
        float, Query(ge=0, le=60, allow_inf_nan=False, description="long-poll seconds")
    ] = 0,
) -> EventPage:
    """Events after ``after`` in seq order; with ``wait``, hold until one comes (long poll)."""
    names = [t.value for t in types] if types else None
    events = await gw.store.wait_events(
        session_id, after, wait, run_id=run_id, types=names, limit=limit
    )
    return EventPage(
        events=events, last_seq=events[-1].seq if events else after, more=len(events) >= limit
    )


@router.get(
    "",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the live stream"}},
)
async def event_stream(
    session_id: OwnedSession,
    caller: Caller,
    gw: Parts,
    after: _Cursor = 0,
    run_id: _RunFilter = None,
    last_event_id: Annotated[
        str | None, Header(max_length=32, description="the reconnecting client's last seq")
    ] = None,
) -> StreamingResponse:
    """Every event after the cursor, then new ones live (Server-Sent Events)."""
    cursor = after
    if last_event_id is not None and last_event_id.strip():
        # The header wins: a browser reconnects to the same URL (same ?after) with it.
        if not last_event_id.strip().isdigit():
            raise error("invalid_cursor", "Last-Event-ID must be the seq of an event (digits)")
        cursor = int(last_event_id)
    # Checked before the stream starts, so a bad cursor is a 400 JSON answer, not a broken
    # stream: a cursor past the end means another session's or a reset database's.
    await gw.store.events(session_id, cursor, limit=1)
    _open_stream(gw, caller)
    return StreamingResponse(
        _frames(gw, caller, session_id, cursor, run_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _open_stream(gw: Gateway, caller: Principal) -> None:
    limit = gw.settings.max_streams_per_key
    if gw.streams.get(caller.key_id, 0) >= limit:
        raise GatewayError(
            error(
                "policy_violation",
                f"this key has {limit} event streams open on this gateway; close one first",
                details={"reason": "too_many_streams"},
            ),
            429,
            {"Retry-After": "5"},
        )
    gw.streams[caller.key_id] = gw.streams.get(caller.key_id, 0) + 1


async def _frames(
    gw: Gateway, caller: Principal, session_id: str, cursor: int, run_id: str | None
) -> AsyncIterator[bytes]:
    # New events come from the process's shared tail (one read per wake-up for every stream);
    # this stream reads the store itself only to catch up: from its cursor when it opens, and
    # whatever a batch does not cover (see gateway.tail).
    tail = shared_tail(gw.store)
    follower: Follower | None = None
    # After the session's end event, events of its runs' endings may still follow: wait a
    # little for them, then say "end" (a client told "end" does not reconnect).
    wait = gw.settings.keepalive_seconds
    try:
        yield b"retry: 1000\n\n"
        try:
            follower = await tail.join(session_id)
        except AsmError as exc:
            yield _error_frame(exc)
            return
        stream = _Stream(gw, session_id, cursor, run_id)
        catch_up = True
        while True:
            try:
                if catch_up:
                    follower.lagged = False
                    async for frames in stream.catch_up():
                        yield frames
                batches = await follower.take(wait)
                if batches is None:
                    if await _ended(gw, session_id):
                        yield b"event: end\ndata: {}\n\n"
                        return
                    yield b": keepalive\n\n"
                    continue
                if follower.error is not None:
                    yield _error_frame(follower.error)
                    return
                catch_up = follower.lagged
                frames = await stream.apply(batches)
            except AsmError as exc:
                yield _error_frame(exc)
                return
            if frames:
                yield frames
            if stream.saw_end:
                wait = _STRAGGLERS_SECONDS
    finally:
        if follower is not None:
            tail.leave(follower)
        left = gw.streams.get(caller.key_id, 1) - 1
        if left > 0:
            gw.streams[caller.key_id] = left
        else:
            gw.streams.pop(caller.key_id, None)


def _error_frame(exc: AsmError) -> bytes:
    return f"event: asm-error\ndata: {json.dumps({'error': exc.to_dict()})}\n\n".encode()


class _Stream:
    """One stream's cursor: the last seq it has sent (or skipped, with ``run_id``)."""

    def __init__(self, gw: Gateway, session_id: str, cursor: int, run_id: str | None) -> None:
        self._store = gw.store
        self._session_id = session_id
        self.cursor = cursor
        self._run_id = run_id
        self.saw_end = False

    def _frames(self, events: list[Event], messages: list[bytes] | None = None) -> bytes:
        """The messages of ``events`` this stream shows (``messages``: theirs, already
        encoded), moving the cursor past them all."""
        if not events:
            return b""
        self.cursor = events[-1].seq
        if messages is None:
            messages = [sse_message(e) for e in events]
        shown = [
            (e, m)
            for e, m in zip(events, messages, strict=True)
            if self._run_id is None or e.run_id == self._run_id
        ]
        if any(e.type in _SESSION_END for e, _ in shown):
            self.saw_end = True
        return b"".join(m for _, m in shown)

    async def _page(self, before: int | None) -> list[Event]:
        return await self._store.events(
            self._session_id, self.cursor, before, limit=_BATCH, strict=False
        )

    async def catch_up(self) -> AsyncIterator[bytes]:
        """Everything after the cursor, straight from the store, in pages."""
        while True:
            events = await self._page(None)
            frames = self._frames(events)
            if frames:
                yield frames
            if len(events) < _BATCH:
                return

    async def apply(self, batches: list[Batch]) -> bytes:
        """The frames for what ``batches`` add past the cursor (reading any gap before them)."""
        out: list[bytes] = []
        for batch in batches:
            while self.cursor < batch.after:
                # The reader was ahead of this stream: the gap is read directly.
                missing = await self._page(batch.after + 1)
                if not missing:
                    raise error(
                        "storage_read_failed",
                        f"events {self.cursor + 1}..{batch.after} of the session are missing",
                    )
                out.append(self._frames(missing))
            past = [i for i, e in enumerate(batch.events) if e.seq > self.cursor]
            out.append(
                self._frames([batch.events[i] for i in past], [batch.messages[i] for i in past])
            )
        return b"".join(out)


async def _ended(gw: Gateway, session_id: str) -> bool:
    """The session ended (its status is written with its end event, so a read that found
    nothing after the cursor means the client has every event)."""
    row = await gw.store.get_session(session_id)
    return row is not None and row.status.is_terminal
