"""The part of a session's state that lives for one execution of ``AgentSession`` only.

``SessionState`` (in ``core.contract``) is what ``describe`` shows and continue-as-new carries;
this is everything else the workflow holds, in one object, so no flag lives loose beside them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from temporalio import workflow
from temporalio.workflow import ChildWorkflowHandle

from agent_session_manager.workflows import ownership
from agent_session_manager.workflows.agent_run import AgentRun
from agent_session_manager.workflows.session_visibility import UI_TRUTH

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core.contract import CancelSession, RunResult, Transition
    from agent_session_manager.core.errors import AsmError
    from agent_session_manager.core.status import SessionStatus

#: Patch: continue-as-new on a replay budget (history events and bytes, not only runs), and
#: no search-attribute upsert for a run's tokens alone. Histories from before it replay as
#: they ran (``tests/histories/before-lean-runs``).
LEAN_RUNS = "lean-runs"

#: How far one execution has got in starting: ``starting`` reads the provider catalog (updates
#: wait for it), ``creating`` records ``session_created`` and the activation (validators can
#: negotiate capabilities, ``describe`` says not ready), ``serving`` is the rest of its life.
Phase = Literal["starting", "creating", "serving"]


@dataclass
class Execution:
    """What lives only as long as one execution of the session workflow.

    Child handles, tasks and the lock cannot cross continue-as-new, and need not: the session
    continues only when no run is active and nothing is ending, so a new execution starts
    from an empty one (its :class:`SessionState` is carried instead).
    """

    phase: Phase
    #: Why this execution's input is unusable: ``run`` fails the workflow with it at once.
    #: (Raising in ``__init__`` would fail it too, but strands the SDK's not-yet-started
    #: ``run`` coroutine.) Until then the session stands as ``failed``: validators reject,
    #: signals are dropped.
    invalid: AsmError | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Started runs that have not settled, by run id.
    active: dict[str, ChildWorkflowHandle[AgentRun, RunResult]] = field(default_factory=dict)
    #: Per-run background work (watching a child, accounting a turn): draining waits for it.
    watchers: set[asyncio.Task[None]] = field(default_factory=set)
    #: The token each run started by this execution holds (its spec's): the evidence a
    #: ``run_finished`` signal must carry. Continue-as-new happens with no run active, so
    #: none needs carrying.
    tokens: dict[str, str] = field(default_factory=dict)
    #: Runs started by this execution: ``continue_as_new_after_runs`` counts these.
    runs_started: int = 0
    #: A ``complete`` / ``fail`` update asked the session to end like this.
    closing: tuple[SessionStatus, Transition] | None = None
    #: The ``cancel`` signal asked the session to end cancelled.
    cancel: CancelSession | None = None
    #: This execution claims its ids in the store (patch ``store-ownership``): decided as the
    #: execution is built, in its first activation, as :mod:`workflows.ownership` requires.
    owns_ids: bool = field(default_factory=ownership.enforcing)
    #: Patch ``ui-truth`` (:mod:`workflows.session_visibility`), decided the same way.
    ui_truth: bool = field(default_factory=lambda: workflow.patched(UI_TRUTH))
    #: Patch ``lean-runs`` (:data:`LEAN_RUNS`): this execution continues-as-new on the replay
    #: budget too and upserts ``AsmTotalTokens`` with the other attributes only. Decided in
    #: the first activation, like every patch here (``AgentSession.__init__``).
    lean: bool = False
    #: The history this execution started with (its start event carries the session's state,
    #: which may be large): the replay budget counts what the execution added to it.
    base_events: int = 0
    base_bytes: int = 0

    @property
    def ready(self) -> bool:
        """The provider's capabilities are known: updates can proceed."""
        return self.phase != "starting"

    @property
    def ending(self) -> bool:
        """Asked to end (``complete``, ``fail`` or ``cancel``): no new runs, no transitions."""
        return self.closing is not None or self.cancel is not None


__all__ = ["LEAN_RUNS", "Execution", "Phase"]
