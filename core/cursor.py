"""A forward-only cursor over one session's stored events (optionally one run's).

A client tails events by feeding the cursor each batch it reads after :attr:`position`;
the cursor hands back only what it has not delivered yet, in canonical order, so a batch
read twice, overlapping or shuffled never yields an event twice or out of order.

Strict where the seed was loose:

* the position only moves forward: :meth:`EventCursor.advance` to an earlier ``seq`` is
  ``invalid_cursor``, as is a negative starting position;
* an event of another session is ``session_mismatch``; on a cursor scoped to a run, an event
  of another run (or of no run) is ``run_mismatch``; a batch holding one is rejected whole,
  before anything in it is delivered, so the position never covers a half-read batch;
* the buffer of recent events is bounded and keeps the newest.

Unlike the frozen models of ``core/`` the cursor is mutable: it lives in a client's tail
loop, never in workflow state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from agent_session_manager.core.errors import StateError
from agent_session_manager.core.events import Event, sort_events

#: Recent events a cursor keeps unless told otherwise.
DEFAULT_BUFFER_SIZE = 1000


class EventCursor:
    """Delivers each event of one session (or run) once, in ``seq`` order; keeps the newest."""

    def __init__(
        self,
        session_id: str,
        *,
        run_id: str | None = None,
        after_seq: int = 0,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        if not session_id:
            raise ValueError("session_id must not be empty")
        if buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        if after_seq < 0:
            raise StateError(
                "invalid_cursor",
                f"cursor position must not be negative, got {after_seq}",
                details={"position": after_seq},
            )
        self.session_id = session_id
        self.run_id = run_id
        self._position = after_seq
        self._buffer: deque[Event] = deque(maxlen=buffer_size)

    def __repr__(self) -> str:
        return (
            f"EventCursor(session_id={self.session_id!r}, run_id={self.run_id!r}, "
            f"position={self._position})"
        )

    @property
    def position(self) -> int:
        """The ``seq`` of the last event delivered or skipped past; read after it next."""
        return self._position

    @property
    def buffer(self) -> list[Event]:
        """The most recently delivered events, oldest first, at most ``buffer_size``."""
        return list(self._buffer)

    @property
    def buffer_size(self) -> int:
        """How many recent events the buffer keeps."""
        assert self._buffer.maxlen is not None
        return self._buffer.maxlen

    def feed(self, events: Iterable[Event]) -> list[Event]:
        """The events of ``events`` not delivered yet, in order; advances past them."""
        batch = list(events)
        for event in batch:
            self._check(event)
        fresh: list[Event] = []
        for event in sort_events(batch):
            # Sorted, so anything at or below the position is a repeat (from this batch or
            # an earlier one): skipping it is what makes delivery exactly-once.
            if event.seq > self._position:
                fresh.append(event)
                self._position = event.seq
        self._buffer.extend(fresh)
        return fresh

    def advance(self, seq: int) -> None:
        """Move the position to ``seq`` without delivering; backwards is ``invalid_cursor``."""
        if seq < self._position:
            raise StateError(
                "invalid_cursor",
                f"cursor cannot move back from {self._position} to {seq}",
                details={"position": self._position, "seq": seq},
            )
        self._position = seq

    def _check(self, event: Event) -> None:
        if event.session_id != self.session_id:
            raise StateError(
                "session_mismatch",
                f"event {event.id!r} belongs to session {event.session_id!r}, "
                f"not {self.session_id!r}",
                details={
                    "event_id": event.id,
                    "expected": self.session_id,
                    "actual": event.session_id,
                },
            )
        if self.run_id is not None and event.run_id != self.run_id:
            raise StateError(
                "run_mismatch",
                f"event {event.id!r} belongs to run {event.run_id!r}, not {self.run_id!r}",
                details={"event_id": event.id, "expected": self.run_id, "actual": event.run_id},
            )
