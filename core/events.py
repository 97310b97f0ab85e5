"""Event types, their categories, and the event envelope.

Writers build :class:`EventDraft` (no ``seq`` yet); the store assigns ``seq`` (gap-free per
session) and ``created_at`` and hands back :class:`Event`. Ids are deterministic so that a
retried activity or a replayed local activity writes nothing twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent_session_manager.core.errors import StateError, ValidationError


class EventType(StrEnum):
    """The 26 canonical event types (``run_queued``: a run waits for a fleet-wide slot)."""

    SESSION_CREATED = "session_created"
    SESSION_STARTED = "session_started"
    SESSION_PAUSED = "session_paused"
    SESSION_RESUMED = "session_resumed"
    SESSION_COMPLETED = "session_completed"
    SESSION_FAILED = "session_failed"
    SESSION_CANCELLED = "session_cancelled"
    RUN_QUEUED = "run_queued"
    RUN_STARTED = "run_started"
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    RUN_TIMEOUT = "run_timeout"
    MESSAGE_SENT = "message_sent"
    MESSAGE_RECEIVED = "message_received"
    MESSAGE_STREAMED = "message_streamed"
    TOOL_CALL_STARTED = "tool_call_started"
    TOOL_CALL_COMPLETED = "tool_call_completed"
    TOOL_CALL_FAILED = "tool_call_failed"
    ERROR_OCCURRED = "error_occurred"
    ERROR_RECOVERED = "error_recovered"
    TOKEN_USAGE_UPDATED = "token_usage_updated"
    TURN_COMPLETED = "turn_completed"
    TOOL_APPROVAL_REQUESTED = "tool_approval_requested"
    TOOL_APPROVAL_GRANTED = "tool_approval_granted"
    TOOL_APPROVAL_DENIED = "tool_approval_denied"


EventCategory = Literal["session", "run", "message", "tool", "error", "usage", "approval"]
"""The seven event categories."""

#: event type -> its category (``turn_completed`` counts as a run event).
EVENT_CATEGORIES: dict[EventType, EventCategory] = {
    **{t: "session" for t in EventType if t.value.startswith("session_")},
    **{t: "run" for t in EventType if t.value.startswith("run_")},
    **{t: "message" for t in EventType if t.value.startswith("message_")},
    **{t: "tool" for t in EventType if t.value.startswith("tool_call_")},
    **{t: "approval" for t in EventType if t.value.startswith("tool_approval_")},
    EventType.ERROR_OCCURRED: "error",
    EventType.ERROR_RECOVERED: "error",
    EventType.TOKEN_USAGE_UPDATED: "usage",
    EventType.TURN_COMPLETED: "run",
}

#: Categories whose events belong to a run and must carry ``run_id``. Stricter than the seed,
#: approval events are run-scoped too: an approval is always for a tool call of some run.
RUN_SCOPED_CATEGORIES: frozenset[EventCategory] = frozenset(
    {"run", "message", "tool", "usage", "approval"}
)

#: Run-ending event per terminal run status.
RUN_TERMINAL_EVENTS: dict[str, EventType] = {
    "completed": EventType.RUN_COMPLETED,
    "failed": EventType.RUN_FAILED,
    "cancelled": EventType.RUN_CANCELLED,
    "timeout": EventType.RUN_TIMEOUT,
}


def parse_event_type(value: str) -> EventType:
    """``EventType(value)``, or ``invalid_event_type``."""
    try:
        return EventType(value)
    except ValueError:
        raise StateError(
            "invalid_event_type", f"unknown event type {value!r}", details={"type": value}
        ) from None


def category_of(event_type: EventType) -> EventCategory:
    """The category an event type belongs to."""
    return EVENT_CATEGORIES[event_type]


class EventDraft(BaseModel):
    """An event as a writer builds it: everything but the store-assigned ``seq``/``created_at``.

    Validation raises taxonomy errors, not pydantic's: a missing or blank ``session_id`` (or
    ``run_id`` on a run-scoped event) is ``missing_required_field``, an unknown ``type`` is
    ``invalid_event_type``.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    session_id: str
    run_id: str | None = None
    attempt: int = Field(default=0, ge=0, description="activity attempt; 0 for lifecycle events")
    type: EventType
    data: dict[str, Any] = Field(default_factory=dict)
    provider: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _require_session(cls, data: Any) -> Any:
        # Checked before field validation so a missing session_id is our error, not pydantic's.
        if isinstance(data, dict):
            session_id = data.get("session_id")
            if not isinstance(session_id, str) or not session_id.strip():
                raise ValidationError(
                    "missing_required_field",
                    "event session_id is required",
                    details={"field": "session_id"},
                )
            if data.get("run_id") == "":
                data = {**data, "run_id": None}
        return data

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, v: Any) -> Any:
        if isinstance(v, str) and not isinstance(v, EventType):
            return parse_event_type(v)
        return v

    @model_validator(mode="after")
    def _check_scope(self) -> EventDraft:
        if self.run_id is None and category_of(self.type) in RUN_SCOPED_CATEGORIES:
            raise ValidationError(
                "missing_required_field",
                f"{self.type.value} events require run_id",
                details={"field": "run_id", "type": self.type.value},
            )
        return self

    @property
    def category(self) -> EventCategory:
        """The event's category."""
        return category_of(self.type)


class Event(EventDraft):
    """A stored event: the draft plus its per-session ``seq`` and ``created_at``."""

    seq: int = Field(ge=1)
    created_at: datetime


def lifecycle_event_id(scope_id: str, counter: int, event_type: EventType) -> str:
    """Id for an event written by a workflow: its id (session or run) and a counter it keeps.

    Deterministic under replay, so the local activity that writes it is idempotent.
    """
    return f"{scope_id}/wf/{counter}/{event_type.value}"


def activity_event_id(run_id: str, attempt: int, index: int) -> str:
    """Id for the ``index``-th event an activity attempt writes for a run."""
    return f"{run_id}/a{attempt}/{index}"
