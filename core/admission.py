"""Admission: what the session does with a submitted run, as one pure decision.

``submit_run``'s validator and handler, and the queue pump, all ask this module, so the
validator can never accept a run the handler would refuse, and the rules read in one place::

    admit(strategy, load)         -> RejectRun | PreemptRuns | QueueRun | StartRun  (a new run)
    admit_after_preemption(load)  -> QueueRun | StartRun  (the new run, once its victims ended)
    admit_queued(load)            -> QueueRun | StartRun  (the head of the queue)

:func:`admit` applies these rules, first match wins:

1. a session that is not active or paused, or is already ending, takes no run:
   ``invalid_transition``;
2. an unknown strategy is ``validation_error`` (the contract's ``Literal`` refuses one first;
   this guards a payload that bypassed it);
3. every slot busy and the strategy ``interrupt`` or ``rollback``: preempt — cancel the
   active runs (``rollback`` also drops them from the conversation), and the new run takes a
   freed slot (:func:`admit_after_preemption`);
4. the session is draining for continue-as-new: queue, whatever the strategy — the wait is
   ours, not the caller's, so it is never a reason to refuse;
5. busy (every slot taken, or the session paused) and the strategy ``reject``:
   ``max_runs_exceeded``;
6. busy, the strategy ``enqueue`` and the queue full: ``max_runs_exceeded``;
7. busy: queue;
8. otherwise: start.

A run that would queue (rules 4 and 7) is refused with ``max_runs_exceeded`` when its request
would take the queue's JSON over ``max_queued_bytes``: continue-as-new carries the queue in a
Temporal payload, refused over 2 MB (and a refused continue-as-new wedges the session).

A run started is always within ``max_active``, except a preempting one: it was promised a
freed slot, and a queued run the pump started while the victims were ending does not take
that promise back, so for a while the session can run more than ``max_active`` runs. (Kept
as it was when this function replaced the workflow's inline rules; changing it changes the
commands a session issues, which needs a ``workflow.patched`` guard.)
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_session_manager.core.contract import (
    MAX_QUEUED_BYTES,
    MULTITASK_STRATEGIES,
    MultitaskStrategy,
)
from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.status import SessionStatus


@dataclass(frozen=True)
class SessionLoad:
    """What admission looks at: the session's status, whether it is ending or draining, and
    how many runs it holds against its limits."""

    status: SessionStatus
    active: int
    queued: int
    max_active: int
    max_queued: int
    ending: bool = False
    draining: bool = False
    #: The queued requests' size as JSON, and the new request's (0 for a queued one).
    queued_bytes: int = 0
    incoming_bytes: int = 0
    max_queued_bytes: int = MAX_QUEUED_BYTES

    @property
    def accepting(self) -> bool:
        """The session takes runs at all: active or paused, and not ending."""
        return self.status in (SessionStatus.ACTIVE, SessionStatus.PAUSED) and not self.ending

    @property
    def full(self) -> bool:
        """Every run slot is taken."""
        return self.active >= self.max_active

    @property
    def held(self) -> bool:
        """Runs wait whatever the slots say: the session is paused or draining."""
        return self.status is SessionStatus.PAUSED or self.draining


@dataclass(frozen=True)
class StartRun:
    """Start the run now."""


@dataclass(frozen=True)
class QueueRun:
    """Queue the run; the pump starts it when :func:`admit_queued` says so."""


@dataclass(frozen=True)
class PreemptRuns:
    """Cancel the active runs first (``rollback``: and drop them from the conversation)."""

    rollback: bool


@dataclass(frozen=True)
class RejectRun:
    """Refuse the run with ``error``; nothing is recorded."""

    error: AsmError


#: What :func:`admit` decides for a new run.
Admission = RejectRun | PreemptRuns | QueueRun | StartRun


def admit(strategy: MultitaskStrategy, load: SessionLoad) -> Admission:
    """The decision for a new run submitted with ``strategy``; see the module rules."""
    if not load.accepting:
        return RejectRun(
            error(
                "invalid_transition",
                f"runs need an active session; this one is {load.status.value}",
                details={"status": load.status.value},
            )
        )
    if strategy not in MULTITASK_STRATEGIES:
        return RejectRun(
            error(
                "validation_error",
                f"unknown strategy {strategy!r}; valid: {', '.join(MULTITASK_STRATEGIES)}",
            )
        )
    if load.full and strategy in ("interrupt", "rollback"):
        return PreemptRuns(rollback=strategy == "rollback")
    if load.draining:
        return _queue(load)
    busy = load.full or load.status is SessionStatus.PAUSED
    if busy and strategy == "reject":
        return RejectRun(
            error(
                "max_runs_exceeded",
                f"{load.active} of {load.max_active} run slot(s) busy "
                "and the strategy is 'reject'; retry later, or submit with strategy "
                "'enqueue', 'interrupt' or 'rollback'",
                details={"limit": load.max_active, "active": load.active},
            )
        )
    if busy and strategy == "enqueue" and load.queued >= load.max_queued:
        return RejectRun(
            error(
                "max_runs_exceeded",
                f"the run queue is full ({load.max_queued} queued)",
                details={"limit": load.max_queued, "queued": load.queued},
            )
        )
    if busy:
        return _queue(load)
    return StartRun()


def _queue(load: SessionLoad) -> QueueRun | RejectRun:
    size = load.queued_bytes + load.incoming_bytes
    if size > load.max_queued_bytes:
        return RejectRun(
            error(
                "max_runs_exceeded",
                f"the run queue would hold {size} bytes of requests; the limit is "
                f"{load.max_queued_bytes} (continue-as-new carries the queue in a Temporal "
                "payload, refused over 2 MB): retry when queued runs have started",
                details={"limit_bytes": load.max_queued_bytes, "queued_bytes": size},
            )
        )
    return QueueRun()


def admit_after_preemption(load: SessionLoad) -> QueueRun | StartRun:
    """The preempting run, once its victims have ended: it takes a freed slot unless the
    session now holds runs (paused, or draining for continue-as-new)."""
    return QueueRun() if load.held else StartRun()


def admit_queued(load: SessionLoad) -> QueueRun | StartRun:
    """The head of the queue: it starts when a new run would start without waiting."""
    if load.accepting and not load.held and not load.full:
        return StartRun()
    return QueueRun()
