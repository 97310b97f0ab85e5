"""The batched, heartbeating event writer every long activity streams through.

* Deltas coalesce: consecutive ``message_streamed`` events of the same block and kind merge
  into one row until the next flush, so a 2,000-token answer is a few dozen rows, not 2,000.
* A flush happens at most every ``flush_interval`` or when ``max_batch`` events are queued,
  whichever comes first; every flush is one transaction and one heartbeat.
* A ticker heartbeats while the provider is quiet, because cancellation reaches an activity
  only through a heartbeat response. It also watches for silence: a provider that emits
  nothing for ``silence_limit`` fails the attempt with ``provider_timeout`` (retried), rather
  than hanging until the run deadline — except while a tool call is open: an agent's
  ``pip install`` may be quiet for minutes, and retrying the turn would run it again.
* Event ids are ``(run, attempt, index)``: a retried flush or a replayed attempt writes
  nothing twice.
* A store outage (:mod:`activities.store_outage`) does not fail the attempt: the provider keeps
  streaming into memory while flushes back off and retry; a batch that failed is re-sent
  exactly as it was (never merged with later deltas: its commit may have landed, and a retried
  write skips ids that exist, so text merged into it would be lost). What is still unwritten at
  the end goes out with the reply (:meth:`StoreSink.take`), which the activity waits to save.
* Usage: the sink keeps the last usage the provider reported (``token_usage_updated`` carries
  the attempt's running totals) and the model it named, so an attempt that fails half-way is
  still billed for what it used (:mod:`activities.ledger`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from agent_session_manager.activities.store_outage import Heartbeat, StoreOutage, is_outage
from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.events import EventDraft, EventType, activity_event_id
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore

#: ``token_usage_updated`` keys of the four billed token classes (:class:`TokenUsage`).
_USAGE_KEYS = tuple(TokenUsage.model_fields)
#: Where providers report reasoning tokens (inside output): Codex, and a generic name.
_THINKING_KEYS = ("reasoning_output_tokens", "thinking_tokens")


class StoreSink:
    """An :class:`~activities.providers.base.EventSink` that writes to the event store."""

    def __init__(
        self,
        store: EventStore,
        *,
        session_id: str,
        run_id: str,
        attempt: int,
        provider: str,
        heartbeat: Heartbeat,
        flush_interval: float = 0.05,
        max_batch: int = 64,
        outage: StoreOutage | None = None,
        id_scope: str | None = None,
    ) -> None:
        self._store = store
        #: What event ids start with: the run, or one model call of its agent loop.
        self.id_scope = id_scope or run_id
        self.session_id = session_id
        self.run_id = run_id
        self.attempt = attempt
        self.provider = provider
        self._heartbeat = heartbeat
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.outage = outage or StoreOutage(heartbeat)
        self._buffer: list[EventDraft] = []
        #: Batches a failed flush could not write, re-sent verbatim before the buffer.
        self._unwritten: list[EventDraft] = []
        #: While the store is out: no write is tried before this (monotonic) time.
        self._retry_at = 0.0
        self._retry_delay = self.outage.initial_delay
        self._index = 0
        self._lock = asyncio.Lock()
        self._last_flush = time.monotonic()
        self.last_progress = time.monotonic()
        self.written = 0
        self._open_tools: set[str] = set()
        self._first_token_sent = False
        self._before: asyncio.Future[Any] | None = None
        #: The attempt's usage as last reported by the provider (running totals).
        self.usage = TokenUsage()
        #: Reasoning tokens, where the provider reports them (they are part of output).
        self.thinking_tokens: int | None = None
        #: The model the provider said it is answering with.
        self.model: str | None = None

    def write_first(self, write: Awaitable[Any]) -> None:
        """Start ``write`` now; whatever this sink writes lands after it.

        The run's ``run_started`` goes out this way, so reading the conversation and
        starting the provider do not wait for its commit, yet the log stays in order.
        """
        self._before = asyncio.ensure_future(write)

    async def written_first(self) -> None:
        """Wait for the :meth:`write_first` write (raising its error, if it failed)."""
        if self._before is not None:
            await self._before

    def draft(self, type: EventType, data: dict[str, Any] | None = None) -> EventDraft:
        """The next event of this attempt, with its deterministic id (not queued)."""
        self._index += 1
        return EventDraft(
            id=activity_event_id(self.id_scope, self.attempt, self._index),
            session_id=self.session_id,
            run_id=self.run_id,
            attempt=self.attempt,
            type=type,
            data=data or {},
            provider=self.provider,
        )

    async def emit(self, type: EventType, data: dict[str, Any] | None = None) -> None:
        """Queue one event, coalescing deltas; flush when the window or the batch is full."""
        self.last_progress = time.monotonic()
        data = data or {}
        if type is EventType.TOKEN_USAGE_UPDATED and "budget" not in data:
            self._note_usage(data)
        elif type is EventType.MESSAGE_SENT and isinstance(data.get("model"), str):
            self.model = data["model"][:255]
        tool_id = str(data.get("id", ""))
        if type is EventType.TOOL_CALL_STARTED:
            self._open_tools.add(tool_id)
        elif type in (EventType.TOOL_CALL_COMPLETED, EventType.TOOL_CALL_FAILED):
            self._open_tools.discard(tool_id)
        # A CLI waiting for a human is not a silent provider.
        elif type is EventType.TOOL_APPROVAL_REQUESTED:
            self._open_tools.add(f"approval:{data.get('digest')}")
        elif type in (EventType.TOOL_APPROVAL_GRANTED, EventType.TOOL_APPROVAL_DENIED):
            self._open_tools.discard(f"approval:{data.get('digest')}")
        if type is EventType.MESSAGE_STREAMED and self._buffer:
            last = self._buffer[-1]
            if (
                last.type is EventType.MESSAGE_STREAMED
                and last.data.get("index") == data.get("index")
                and last.data.get("kind") == data.get("kind")
            ):
                merged = {**last.data, "text": last.data.get("text", "") + data.get("text", "")}
                self._buffer[-1] = last.model_copy(update={"data": merged})
                await self._maybe_flush()
                return
        self._buffer.append(self.draft(type, data))
        if type is EventType.MESSAGE_STREAMED and not self._first_token_sent:
            # Time to first token is what a user feels: the first delta does not wait.
            self._first_token_sent = True
            await self.flush()
            return
        await self._maybe_flush()

    def _note_usage(self, data: dict[str, Any]) -> None:
        # Running totals: each count present replaces the last; a malformed one is ignored
        # rather than failing an attempt over its bookkeeping.
        counts = {k: v for k in _USAGE_KEYS if _count(v := data.get(k))}
        if counts:
            self.usage = self.usage.model_copy(update=counts)
        for key in _THINKING_KEYS:
            if _count(value := data.get(key)):
                self.thinking_tokens = value

    async def _maybe_flush(self) -> None:
        if (
            len(self._buffer) >= self.max_batch
            or time.monotonic() - self._last_flush >= self.flush_interval
        ):
            await self.flush()

    async def flush(self, extra: list[EventDraft] | None = None) -> None:
        """Write the queue (plus ``extra``) in one transaction, then heartbeat.

        While the store is out, a flush keeps the events for a later one and returns at once
        (the provider goes on streaming); tries back off as :mod:`activities.store_outage`
        says, and give up (raise) only once the activity's deadline would pass.
        """
        async with self._lock:
            self._unwritten += self._buffer + (extra or [])
            self._buffer = []
            self._last_flush = time.monotonic()
            if time.monotonic() >= self._retry_at and not (
                # run_started is itself waiting for the store: what follows it waits too
                self.outage.ongoing and self._before is not None and not self._before.done()
            ):
                await self._write()
            self._heartbeat(self.written)

    async def _write(self) -> None:
        try:
            await self.written_first()
            if self._unwritten:
                written = await self._store.append(self._unwritten)
                self.written += len(written)
                self._unwritten = []
        except AsmError as err:
            if not is_outage(err) or not self.outage.allows(self._retry_delay):
                raise
            self.outage.noticed(err, f"streaming run {self.run_id}")
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, self.outage.max_delay)
            return
        self.outage.recovered(f"streaming run {self.run_id}")
        self._retry_at, self._retry_delay = 0.0, self.outage.initial_delay

    @property
    def unwritten(self) -> int:
        """Events a flush could not write yet (the store is out)."""
        return len(self._unwritten)

    def take(self) -> list[EventDraft]:
        """Hand over what is not written, for a caller that writes it in its own transaction."""
        batch = self._unwritten + self._buffer
        self._unwritten, self._buffer = [], []
        return batch

    async def run_with_ticker(
        self, work: Awaitable[Any], *, tick: float, silence_limit: float
    ) -> Any:
        """Await ``work`` while a ticker flushes, heartbeats and watches for silence."""
        # The silence is the provider's, counted from its call: a run that waited for a
        # fleet-wide slot longer than the limit must not be blamed for the wait.
        self.last_progress = time.monotonic()
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=tick)
                if done:
                    return task.result()
                if self._lock.locked():
                    # A write is in flight and slow (the store is struggling): keep the attempt
                    # alive, and do not blame the provider, whose emit may be the one waiting.
                    self._heartbeat(self.written)
                    continue
                quiet = time.monotonic() - self.last_progress
                if quiet > silence_limit and not self._open_tools:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    raise _silence(silence_limit)
                await self.flush()
        finally:
            if not task.done():
                # We are being cancelled: stop the provider and wait for it to let go.
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62


def _silence(limit: float) -> AsmError:
    return error(
        "provider_timeout",
        f"the provider sent nothing for {limit:g}s",
        details={"silence_seconds": limit},
    )
