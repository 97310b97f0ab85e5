"""The Session and Run domain models: ids, status machines in use, timestamps and usage.

Both are frozen: every change returns a new instance, so a workflow can keep one as state and
replay cannot see a mutation made behind its back. Nothing here reads a clock or a random
source. Each change takes ``now`` (``workflow.now()`` in a workflow) and ids are built from a
source the caller supplies (``workflow.uuid4()``, or a suffix it chose), so replays agree.

Stricter than the seed:

* ids carry their prefix (``ses_`` / ``run_``) and a non-empty suffix of letters, digits,
  ``_`` and ``-`` (``invalid_format`` otherwise);
* ``agent_id`` is required and not blank; tags are non-blank and de-duplicated, in order;
* timestamps must be timezone-aware (``invalid_input``): a naive datetime compares wrongly
  against an aware one, and Temporal gives aware UTC times;
* status changes go through :func:`core.status.check_transition`, so every invalid move is
  ``invalid_transition`` and terminal states are final;
* ``started_at`` is set when a run starts running (and when a session first becomes
  active) and ``ended_at`` on every terminal status, and never otherwise.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent_session_manager.core.errors import AsmError, ConcurrencyError, ValidationError
from agent_session_manager.core.status import RunStatus, SessionStatus, check_transition
from agent_session_manager.core.usage import TokenUsage

#: Prefix of every session id.
SESSION_ID_PREFIX = "ses_"

#: Prefix of every run id.
RUN_ID_PREFIX = "run_"

# Ids land in workflow ids (``session-<id>``), SQL keys and URLs: keep them plain.
_SUFFIX = re.compile(r"[A-Za-z0-9_-]+")


def _make_id(prefix: str, source: UUID | str) -> str:
    suffix = source.hex if isinstance(source, UUID) else source
    if not _SUFFIX.fullmatch(suffix):
        raise ValidationError(
            "invalid_format",
            f"id suffix must be letters, digits, '_' or '-', got {suffix!r}",
            details={"prefix": prefix, "suffix": suffix},
        )
    return prefix + suffix


def _check_id(prefix: str, kind: str, value: str) -> str:
    if not value.startswith(prefix) or not _SUFFIX.fullmatch(value[len(prefix) :]):
        raise ValidationError(
            "invalid_format",
            f"{kind} id must be {prefix!r} followed by letters, digits, '_' or '-', got {value!r}",
            details={"field": f"{kind}_id", "value": value, "prefix": prefix},
        )
    return value


def _aware(value: datetime, field: str = "now") -> datetime:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValidationError(
            "invalid_input",
            f"{field} must be timezone-aware, got naive {value.isoformat()}",
            details={"field": field},
        )
    return value


def new_session_id(source: UUID | str) -> str:
    """``ses_`` plus the hex of ``source`` (a UUID) or ``source`` itself (a suffix)."""
    return _make_id(SESSION_ID_PREFIX, source)


def new_run_id(source: UUID | str) -> str:
    """``run_`` plus the hex of ``source`` (a UUID) or ``source`` itself (a suffix)."""
    return _make_id(RUN_ID_PREFIX, source)


def _error_dict(err: AsmError | dict[str, Any] | None) -> dict[str, Any] | None:
    return err.to_dict() if isinstance(err, AsmError) else err


class SessionContext(BaseModel):
    """What every run of a session starts from: the system prompt and free-form context data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system_prompt: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Session(BaseModel):
    """One conversation with one agent, as a status machine with accumulated usage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    agent_id: str
    status: SessionStatus = SessionStatus.PENDING
    context: SessionContext = Field(default_factory=SessionContext)
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    token_usage: TokenUsage = Field(default_factory=TokenUsage)
    error: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @field_validator("id")
    @classmethod
    def _session_id(cls, v: str) -> str:
        return _check_id(SESSION_ID_PREFIX, "session", v)

    @field_validator("agent_id")
    @classmethod
    def _agent_id(cls, v: str) -> str:
        if not v.strip():
            raise ValidationError(
                "missing_required_field",
                "session agent_id is required",
                details={"field": "agent_id"},
            )
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not t.strip() for t in v):
            raise ValidationError("invalid_input", "tags must not be blank", details={"tags": v})
        return tuple(dict.fromkeys(v))

    @model_validator(mode="after")
    def _consistent(self) -> Session:
        _check_times(self.created_at, self.updated_at, self.started_at, self.ended_at)
        _check_end(self.status.is_terminal, self.ended_at, "session", self.status.value)
        return self

    @classmethod
    def new(
        cls,
        *,
        agent_id: str,
        now: datetime,
        id_source: UUID | str,
        system_prompt: str | None = None,
        context: SessionContext | None = None,
        metadata: dict[str, Any] | None = None,
        tags: tuple[str, ...] | list[str] = (),
    ) -> Session:
        """A pending session created at ``now``, with its id built from ``id_source``."""
        if context is not None and system_prompt is not None:
            raise TypeError("pass system_prompt or context, not both")
        return cls(
            id=new_session_id(id_source),
            agent_id=agent_id,
            context=context or SessionContext(system_prompt=system_prompt),
            metadata=metadata or {},
            tags=tuple(tags),
            created_at=now,
            updated_at=now,
        )

    def transition(
        self, target: SessionStatus, *, now: datetime, error: dict[str, Any] | None = None
    ) -> Session:
        """This session moved to ``target`` at ``now``; ``invalid_transition`` if not allowed."""
        check_transition(self.status, target)
        _aware(now)
        update: dict[str, Any] = {"status": target, "updated_at": now}
        if target is SessionStatus.ACTIVE and self.started_at is None:
            update["started_at"] = now
        if target.is_terminal:
            update["ended_at"] = now
        if error is not None:
            update["error"] = error
        return _evolve(self, update)

    def activate(self, *, now: datetime) -> Session:
        """``pending → active``."""
        return self.transition(SessionStatus.ACTIVE, now=now)

    def pause(self, *, now: datetime) -> Session:
        """``active → paused``."""
        return self.transition(SessionStatus.PAUSED, now=now)

    def resume(self, *, now: datetime) -> Session:
        """``paused → active``."""
        return self.transition(SessionStatus.ACTIVE, now=now)

    def complete(self, *, now: datetime) -> Session:
        """End the session successfully (from active or paused)."""
        return self.transition(SessionStatus.COMPLETED, now=now)

    def fail(self, *, now: datetime, error: AsmError | dict[str, Any] | None = None) -> Session:
        """End the session as failed, recording ``error`` (an ``AsmError`` or its dict)."""
        return self.transition(SessionStatus.FAILED, now=now, error=_error_dict(error))

    def cancel(self, *, now: datetime) -> Session:
        """End the session as cancelled (from any non-terminal status)."""
        return self.transition(SessionStatus.CANCELLED, now=now)

    def add_usage(self, usage: TokenUsage, *, now: datetime) -> Session:
        """This session with ``usage`` added to its total.

        Accepted in every status, terminal ones too: a cancelled run's tokens were still
        billed, and its final usage report may arrive after the session ended.
        """
        _aware(now)
        return _evolve(self, {"token_usage": self.token_usage + usage, "updated_at": now})


class Run(BaseModel):
    """One turn of work inside a session: input, output or error, usage and turn count."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    session_id: str
    status: RunStatus = RunStatus.PENDING
    input: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    token_usage: TokenUsage = Field(default_factory=TokenUsage)
    turn_count: int = Field(default=0, ge=0)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @field_validator("id")
    @classmethod
    def _run_id(cls, v: str) -> str:
        return _check_id(RUN_ID_PREFIX, "run", v)

    @field_validator("session_id")
    @classmethod
    def _session_id(cls, v: str) -> str:
        return _check_id(SESSION_ID_PREFIX, "session", v)

    @model_validator(mode="after")
    def _consistent(self) -> Run:
        _check_times(self.created_at, self.updated_at, self.started_at, self.ended_at)
        _check_end(self.status.is_terminal, self.ended_at, "run", self.status.value)
        if self.status is RunStatus.PENDING and self.started_at is not None:
            raise _inconsistent("a pending run has not started", "run", self.status.value)
        if self.status is RunStatus.RUNNING and self.started_at is None:
            raise _inconsistent("a running run needs started_at", "run", self.status.value)
        return self

    @classmethod
    def new(
        cls,
        *,
        session_id: str,
        now: datetime,
        id_source: UUID | str,
        input: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Run:
        """A pending run of ``session_id`` created at ``now``, its id built from ``id_source``."""
        return cls(
            id=new_run_id(id_source),
            session_id=session_id,
            input=input or {},
            metadata=metadata or {},
            created_at=now,
            updated_at=now,
        )

    def transition(self, target: RunStatus, *, now: datetime) -> Run:
        """This run moved to ``target`` at ``now``; ``invalid_transition`` if not allowed."""
        return self._move(target, now)

    def _move(self, target: RunStatus, now: datetime, **changes: Any) -> Run:
        check_transition(self.status, target)
        _aware(now)
        update: dict[str, Any] = {**changes, "status": target, "updated_at": now}
        if target is RunStatus.RUNNING:
            update["started_at"] = now
        if target.is_terminal:
            update["ended_at"] = now
        return _evolve(self, update)

    def start(self, *, now: datetime) -> Run:
        """``pending → running``; sets ``started_at``."""
        return self.transition(RunStatus.RUNNING, now=now)

    def complete(self, *, now: datetime, output: dict[str, Any] | None = None) -> Run:
        """``running → completed`` with ``output``; sets ``ended_at``."""
        return self._move(RunStatus.COMPLETED, now, output=output)

    def fail(self, *, now: datetime, error: AsmError | dict[str, Any]) -> Run:
        """End the run as failed with ``error`` (an ``AsmError`` or its dict)."""
        return self._move(RunStatus.FAILED, now, error=_error_dict(error))

    def cancel(self, *, now: datetime, reason: str | None = None) -> Run:
        """End the run as cancelled (also before it started); ``reason`` goes in the error."""
        err = AsmError("cancelled", reason).to_dict()
        return self._move(RunStatus.CANCELLED, now, error=err)

    def time_out(self, *, now: datetime) -> Run:
        """``running → timeout``, recording a ``timeout`` error."""
        return self._move(RunStatus.TIMEOUT, now, error=AsmError("timeout").to_dict())

    def record_turn(self, *, now: datetime) -> Run:
        """One more completed turn; only a running run takes turns (``invalid_operation``)."""
        if self.status is not RunStatus.RUNNING:
            raise ConcurrencyError(
                "invalid_operation",
                f"a {self.status.value} run cannot take a turn",
                details={"run_id": self.id, "status": self.status.value},
            )
        _aware(now)
        return _evolve(self, {"turn_count": self.turn_count + 1, "updated_at": now})

    def add_usage(self, usage: TokenUsage, *, now: datetime) -> Run:
        """This run with ``usage`` added; accepted in every status (tokens spent are spent)."""
        _aware(now)
        return _evolve(self, {"token_usage": self.token_usage + usage, "updated_at": now})


_M = TypeVar("_M", Session, Run)


def _evolve(model: _M, update: dict[str, Any]) -> _M:
    # Rebuilt through validation, not model_copy (which skips validators), so every change
    # re-checks the invariants: an end before the start cannot slip in through a method.
    return type(model).model_validate({**dict(model), **update})


def _check_times(
    created_at: datetime,
    updated_at: datetime,
    started_at: datetime | None,
    ended_at: datetime | None,
) -> None:
    named = {
        "created_at": created_at,
        "updated_at": updated_at,
        "started_at": started_at,
        "ended_at": ended_at,
    }
    for name, value in named.items():
        if value is not None:
            _aware(value, name)
    if started_at is not None and ended_at is not None and ended_at < started_at:
        raise ValidationError(
            "invalid_input",
            "ended_at is before started_at",
            details={"started_at": started_at.isoformat(), "ended_at": ended_at.isoformat()},
        )


def _check_end(terminal: bool, ended_at: datetime | None, kind: str, status: str) -> None:
    if terminal and ended_at is None:
        raise _inconsistent(f"a {status} {kind} needs ended_at", kind, status)
    if not terminal and ended_at is not None:
        raise _inconsistent(f"a {status} {kind} has not ended", kind, status)


def _inconsistent(message: str, kind: str, status: str) -> ValidationError:
    return ValidationError("invalid_input", message, details={"kind": kind, "status": status})
