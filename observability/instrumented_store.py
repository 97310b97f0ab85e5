"""The event store seen through telemetry: write spans and lifecycle metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from agent_session_manager.core.events import EventType
from agent_session_manager.observability.metrics import instruments
from agent_session_manager.observability.provider_call import first_token_seen
from agent_session_manager.observability.span_errors import record_error
from agent_session_manager.observability.tracing import tracer

log = logging.getLogger(__name__)

T = TypeVar("T")

SESSION_TERMINAL = {
    EventType.SESSION_COMPLETED.value,
    EventType.SESSION_FAILED.value,
    EventType.SESSION_CANCELLED.value,
}
RUN_TERMINAL = {
    EventType.RUN_COMPLETED.value: "completed",
    EventType.RUN_FAILED.value: "failed",
    EventType.RUN_CANCELLED.value: "cancelled",
    EventType.RUN_TIMEOUT.value: "timeout",
}


#: Runs whose start time the instrumented store remembers for ``asm.run.duration``.
MAX_TIMED_RUNS = 10_000


class InstrumentedStore:
    """An :class:`store.EventStore` whose writes are spans and whose lifecycle writes count.

    Wraps the worker's store (``serve``); everything else passes through unchanged.
    Spans: ``asm.store.<method>`` (kind CLIENT) with ``db.system.name``, ``db.operation.name``,
    ``asm.session_id``, ``asm.run_id``, ``asm.events.count`` and ``asm.events.written``.
    Metrics come from ``record`` and ``save_reply``'s ending: only a *newly written* lifecycle
    event counts.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self.__wrapped__ = store
        # run id -> when this worker recorded its run_started: durations without a read on
        # the run's hot path. Insertion-ordered, so the oldest go first when it is full.
        self._started: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def __repr__(self) -> str:
        return f"InstrumentedStore({self._store!r})"

    @contextmanager
    def _span(self, operation: str, attributes: dict[str, Any]) -> Iterator[trace.Span]:
        attrs = {
            "db.system.name": getattr(self._store, "backend", "sql"),
            "db.operation.name": operation,
            **{k: v for k, v in attributes.items() if v is not None},
        }
        with tracer().start_as_current_span(
            f"asm.store.{operation}",
            kind=SpanKind.CLIENT,
            attributes=attrs,
            # A database error can quote the statement's parameters (event data, content):
            # recorded bounded and redacted instead.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except Exception as exc:
                record_error(span, exc)
                raise

    async def append(self, drafts: Sequence[Any]) -> Any:
        first = drafts[0] if drafts else None
        with self._span(
            "append",
            {
                "asm.session_id": getattr(first, "session_id", None),
                "asm.run_id": getattr(first, "run_id", None),
                "asm.events.count": len(drafts),
            },
        ) as span:
            written = await self._store.append(drafts)
            span.set_attribute("asm.events.written", len(written))
        first_token_seen(drafts)
        return written

    async def save_reply(
        self,
        session_id: str,
        run_id: str,
        turn: int,
        messages: Sequence[Any],
        events: Sequence[Any] = (),
        *,
        bill: Any,
        alone: bool = True,
        ending: Any = None,
    ) -> Any:
        with self._span(
            "save_reply",
            {
                "asm.session_id": session_id,
                "asm.run_id": run_id,
                "asm.events.count": len(events) + (ending is not None),
            },
        ) as span:
            saved = await self._store.save_reply(
                session_id, run_id, turn, messages, events, bill=bill, alone=alone, ending=ending
            )
            span.set_attribute("asm.events.written", len(saved.written))
            if saved.record is not None:  # built from the run's total inside the write
                span.set_attribute("asm.event.type", saved.record.type)
        first_token_seen(events)
        record = saved.record
        if record is not None and any(e.id == record.event_id for e in saved.written):
            await self._observe_lifecycle(record)
        return saved

    async def put_content(self, content: str | bytes, *args: Any) -> Any:
        # The size only: the content itself never goes into a span.
        with self._span("put_content", {"asm.content.chars": len(content)}) as span:
            ref = await self._store.put_content(content, *args)
            span.set_attribute("asm.content.digest", ref.digest)
        return ref

    async def mark_rolled_back(self, run_id: str) -> None:
        with self._span("mark_rolled_back", {"asm.run_id": run_id}):
            await self._store.mark_rolled_back(run_id)

    async def record(self, rec: Any) -> Any:
        with self._span(
            "record",
            {
                "asm.session_id": rec.session_id,
                "asm.run_id": rec.run_id,
                "asm.event.type": rec.type,
                "asm.events.count": 1,
            },
        ) as span:
            event = await self._store.record(rec)
            span.set_attribute("asm.events.written", 0 if event is None else 1)
        if event is not None:
            await self._observe_lifecycle(rec)
        return event

    async def _observe_lifecycle(self, rec: Any) -> None:
        try:
            await self._count_lifecycle(rec)
        except Exception:  # metrics must never fail a lifecycle write
            log.warning("lifecycle metrics failed for %s", rec.type, exc_info=True)

    async def _count_lifecycle(self, rec: Any) -> None:
        inst = instruments()
        provider = {"asm.provider": rec.provider or "unknown"}
        if rec.type == EventType.SESSION_CREATED.value:
            inst.active_sessions.add(1, provider)
        elif rec.type in SESSION_TERMINAL:
            inst.active_sessions.add(-1, provider)
        elif rec.type == EventType.RUN_STARTED.value:
            inst.runs_started.add(1, provider)
            inst.active_runs.add(1, provider)
            self._started.setdefault(rec.run_id, time.monotonic())
            while len(self._started) > MAX_TIMED_RUNS:  # runs whose end another worker saw
                self._started.pop(next(iter(self._started)))
        elif rec.type in RUN_TERMINAL:
            status = RUN_TERMINAL[rec.type]
            attrs = {**provider, "asm.run.status": status}
            err = rec.data.get("error") if isinstance(rec.data, dict) else None
            if isinstance(err, dict) and err.get("code"):
                attrs["error.type"] = str(err["code"])
            inst.runs_completed.add(1, attrs)
            inst.active_runs.add(-1, provider)
            started = self._started.pop(rec.run_id, None)
            if started is not None:
                seconds: float | None = time.monotonic() - started
            else:  # started on another worker (or before a restart): the run row knows
                seconds = await self._row_duration(rec.run_id)
            if seconds is not None:
                inst.run_duration.record(seconds, {**provider, "asm.run.status": status})

    async def _row_duration(self, run_id: str | None) -> float | None:
        row = await self._store.get_run(run_id) if run_id else None
        if row is None or row.started_at is None or row.ended_at is None:
            return None
        seconds: float = (row.ended_at - row.started_at).total_seconds()
        return max(seconds, 0.0)


def instrument_store(store: T) -> T:
    """``store`` wrapped in :class:`InstrumentedStore` (idempotent)."""
    if isinstance(store, InstrumentedStore):
        return store
    return InstrumentedStore(store)  # type: ignore[return-value]
