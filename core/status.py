"""Session and run status machines. Transitions are enforced; terminal states are final.

Session: ``pending → active ⇄ paused → completed | failed | cancelled``
(``pending`` may also end ``failed`` or ``cancelled`` without ever becoming active).

Run: ``pending → running → completed | failed | cancelled | timeout``
(a ``pending`` run may be ``cancelled`` before it starts: a queued run that never ran).

Where the seed system allowed a no-op "transition" to the same status we are strict: it is
``invalid_transition`` too, so a caller cannot mistake a repeat for a change. Statuses are
enums, never bare strings: text from outside goes through :func:`parse_session_status` /
:func:`parse_run_status`, and an unknown value is ``invalid_status``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from agent_session_manager.core.errors import StateError


class SessionStatus(StrEnum):
    """Where a session is in its life."""

    PENDING = "pending"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for completed, failed and cancelled."""
        return self in _SESSION_TERMINAL


class RunStatus(StrEnum):
    """Where a run is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"

    @property
    def is_terminal(self) -> bool:
        """True for completed, failed, cancelled and timeout."""
        return self in _RUN_TERMINAL


_SESSION_TERMINAL = frozenset(
    {SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.CANCELLED}
)
_RUN_TERMINAL = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMEOUT}
)

#: status -> the statuses a session may move to from it.
SESSION_TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.PENDING: frozenset(
        {SessionStatus.ACTIVE, SessionStatus.FAILED, SessionStatus.CANCELLED}
    ),
    SessionStatus.ACTIVE: frozenset(
        {
            SessionStatus.PAUSED,
            SessionStatus.COMPLETED,
            SessionStatus.FAILED,
            SessionStatus.CANCELLED,
        }
    ),
    SessionStatus.PAUSED: frozenset(
        {
            SessionStatus.ACTIVE,
            SessionStatus.COMPLETED,
            SessionStatus.FAILED,
            SessionStatus.CANCELLED,
        }
    ),
    SessionStatus.COMPLETED: frozenset(),
    SessionStatus.FAILED: frozenset(),
    SessionStatus.CANCELLED: frozenset(),
}

#: status -> the statuses a run may move to from it.
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMEOUT}
    ),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
    RunStatus.TIMEOUT: frozenset(),
}

# Constrained, so a session status can never be checked against a run status.
S = TypeVar("S", SessionStatus, RunStatus)


def parse_session_status(value: str) -> SessionStatus:
    """``SessionStatus(value)``, or ``invalid_status`` naming the valid ones."""
    try:
        return SessionStatus(value)
    except ValueError:
        raise StateError(
            "invalid_status",
            f"unknown session status {value!r}; valid: {', '.join(s.value for s in SessionStatus)}",
            details={"status": value},
        ) from None


def parse_run_status(value: str) -> RunStatus:
    """``RunStatus(value)``, or ``invalid_status`` naming the valid ones."""
    try:
        return RunStatus(value)
    except ValueError:
        raise StateError(
            "invalid_status",
            f"unknown run status {value!r}; valid: {', '.join(s.value for s in RunStatus)}",
            details={"status": value},
        ) from None


def allowed_targets(current: S) -> frozenset[S]:
    """The statuses ``current`` may move to (empty for a terminal status)."""
    table: dict[S, frozenset[S]] = _table(current)
    return table[current]


def check_transition(current: S, target: S) -> S:
    """Return ``target`` if ``current → target`` is allowed, else raise ``invalid_transition``."""
    if type(target) is not type(current):
        # StrEnum members compare equal to their values, so RunStatus.CANCELLED would pass
        # a membership test against SessionStatus targets: refuse the mix outright.
        raise TypeError(
            f"cannot check a transition from {type(current).__name__} to {type(target).__name__}"
        )
    allowed = allowed_targets(current)
    if target not in allowed:
        kind = "session" if isinstance(current, SessionStatus) else "run"
        names = sorted(s.value for s in allowed)
        targets = ", ".join(names) or "none (terminal)"
        raise StateError(
            "invalid_transition",
            f"{kind} cannot go from {current.value} to {target.value}; allowed: {targets}",
            details={"kind": kind, "from": current.value, "to": target.value, "allowed": names},
        )
    return target


def _table(current: S) -> dict[S, frozenset[S]]:
    if isinstance(current, SessionStatus):
        return SESSION_TRANSITIONS
    if isinstance(current, RunStatus):
        return RUN_TRANSITIONS
    # A plain str would silently index the wrong table: callers parse first.
    raise TypeError(f"expected SessionStatus or RunStatus, got {type(current).__name__}")
