"""Control operations on a run (interrupt, cancel, pause, resume) as pure state with history.

A :class:`RunControl` records what was asked of one run and where that leaves it::

    active ⇄ paused          (pause / resume; only when the provider can pause)
    active | paused → interrupted | cancelled | finished      (terminal)

Rules:

* a repeat is idempotent: pausing a paused run, resuming an active one, interrupting an
  interrupted one, is recorded as ``repeated`` and changes nothing, so a retried request
  is harmless;
* stopping a stopped run (interrupt or cancel once it is terminal) is recorded as
  ``ignored``: the run is already stopped, the request raced its end;
* pause and resume need the capability (``capability_not_supported``, checked first), and
  on a terminal run they are ``invalid_operation``: a finished run cannot be resumed;
* an unknown operation name is ``invalid_operation``.

Only accepted requests enter the history; a rejected one raises and leaves no trace.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_session_manager.core.errors import ConcurrencyError

ControlOperation = Literal["interrupt", "cancel", "pause", "resume"]
"""The four operations a client can ask of a running run."""

#: Every control operation, in declaration order.
CONTROL_OPERATIONS: tuple[ControlOperation, ...] = ("interrupt", "cancel", "pause", "resume")

ControlState = Literal["active", "paused", "interrupted", "cancelled", "finished"]
"""Where a run stands as far as control goes; the last three are terminal."""

#: The control states no operation leaves.
TERMINAL_CONTROL_STATES: frozenset[ControlState] = frozenset(
    {"interrupted", "cancelled", "finished"}
)

ControlOutcome = Literal["applied", "repeated", "ignored"]
"""What an accepted request did: changed the state, repeated it, or came too late."""

_STOP_TARGET: dict[ControlOperation, ControlState] = {
    "interrupt": "interrupted",
    "cancel": "cancelled",
}


def parse_control_operation(value: str) -> ControlOperation:
    """``value`` as a :data:`ControlOperation`, or ``invalid_operation`` naming them all."""
    if value in CONTROL_OPERATIONS:
        return value
    raise ConcurrencyError(
        "invalid_operation",
        f"unknown control operation {value!r}; valid: {', '.join(CONTROL_OPERATIONS)}",
        details={"operation": value, "valid": list(CONTROL_OPERATIONS)},
    )


class ControlRecord(BaseModel):
    """One accepted control request: what, when, why, and the state before and after."""

    model_config = ConfigDict(frozen=True)

    operation: ControlOperation
    outcome: ControlOutcome
    from_state: ControlState
    to_state: ControlState
    at: datetime
    reason: str | None = None


class RunControl(BaseModel):
    """The control state of one run and the history of requests that shaped it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field(min_length=1)
    pausable: bool = Field(default=False, description="the provider can pause and resume")
    state: ControlState = "active"
    history: tuple[ControlRecord, ...] = ()

    @property
    def is_terminal(self) -> bool:
        """True once the run is interrupted, cancelled or finished."""
        return self.state in TERMINAL_CONTROL_STATES

    @property
    def last(self) -> ControlRecord | None:
        """The most recent accepted request, if any."""
        return self.history[-1] if self.history else None

    def apply(
        self, operation: ControlOperation | str, *, now: datetime, reason: str | None = None
    ) -> RunControl:
        """This control after ``operation``; see the module rules for what is refused."""
        op = parse_control_operation(operation)
        if op in ("pause", "resume"):
            return self._pause_or_resume(op, now, reason)
        target = _STOP_TARGET[op]
        if self.state == target:
            return self._record(op, "repeated", self.state, now, reason)
        if self.is_terminal:
            return self._record(op, "ignored", self.state, now, reason)
        return self._record(op, "applied", target, now, reason)

    def interrupt(self, *, now: datetime, reason: str | None = None) -> RunControl:
        """Stop the run's current work: ``active | paused → interrupted``."""
        return self.apply("interrupt", now=now, reason=reason)

    def cancel(self, *, now: datetime, reason: str | None = None) -> RunControl:
        """Cancel the run: ``active | paused → cancelled``."""
        return self.apply("cancel", now=now, reason=reason)

    def pause(self, *, now: datetime, reason: str | None = None) -> RunControl:
        """``active → paused``; needs a pausable provider."""
        return self.apply("pause", now=now, reason=reason)

    def resume(self, *, now: datetime, reason: str | None = None) -> RunControl:
        """``paused → active``; needs a pausable provider and a run that has not ended."""
        return self.apply("resume", now=now, reason=reason)

    def finish(self) -> RunControl:
        """The run ended on its own (completed, failed, timed out): nothing can be asked of it.

        Not a request, so it adds no history; a run already stopped keeps its state.
        """
        if self.is_terminal:
            return self
        return self.model_copy(update={"state": "finished"})

    def _pause_or_resume(
        self, op: ControlOperation, now: datetime, reason: str | None
    ) -> RunControl:
        if not self.pausable:
            raise ConcurrencyError(
                "capability_not_supported",
                f"run {self.run_id!r} cannot {op}: its provider does not support pause/resume",
                details={"run_id": self.run_id, "operation": op},
            )
        if self.is_terminal:
            raise ConcurrencyError(
                "invalid_operation",
                f"cannot {op} run {self.run_id!r}: it is {self.state}",
                details={"run_id": self.run_id, "operation": op, "state": self.state},
            )
        target: ControlState = "paused" if op == "pause" else "active"
        if self.state == target:
            return self._record(op, "repeated", self.state, now, reason)
        return self._record(op, "applied", target, now, reason)

    def _record(
        self,
        op: ControlOperation,
        outcome: ControlOutcome,
        to_state: ControlState,
        now: datetime,
        reason: str | None,
    ) -> RunControl:
        record = ControlRecord(
            operation=op,
            outcome=outcome,
            from_state=self.state,
            to_state=to_state,
            at=now,
            reason=reason,
        )
        return self.model_copy(update={"state": to_state, "history": (*self.history, record)})
