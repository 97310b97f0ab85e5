"""``SessionClient``: the async Python face of agent-session-manager.

Everything goes through Temporal (start, updates, signals, queries, visibility) except events,
which are read from the event store by cursor: tokens never travel through workflow history.
Neither do long prompts, system prompts and replies: the client stores a prompt over
:data:`~core.content.INLINE_LIMIT` in the event store and sends its reference, and reads a
reply that came back by reference into ``RunResult.output``.
Every Temporal failure comes back as the :class:`~core.errors.AsmError` the workflow raised; an
unreachable Temporal server as ``temporal_unavailable``. The calls that wait (``wait_run``,
``result``, the streams) ride out outages of Temporal and of the store (see
:mod:`client.outages`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractContextManager, aclosing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast
from urllib.parse import quote

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode, TLSConfig
from temporalio.workflow import UpdateMethodMultiParam

from agent_session_manager.client.connect import resolve
from agent_session_manager.client.outages import Component, OutageWaiter, Patience
from agent_session_manager.core import search_attributes
from agent_session_manager.core.capabilities import CapabilityType
from agent_session_manager.core.content import ContentRef, travels_by_reference
from agent_session_manager.core.contract import (
    CancelRun,
    CancelSession,
    Message,
    MockScript,
    MultitaskStrategy,
    RetrySettings,
    RunRef,
    RunRequest,
    RunResult,
    SessionSpec,
    SessionSummary,
    SessionView,
    Transition,
    check_id,
    check_tenant,
    run_workflow_id,
    session_tenant,
    session_workflow_id,
)
from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.events import RUN_TERMINAL_EVENTS, Event, EventType
from agent_session_manager.core.lifecycle import run_result_from_error
from agent_session_manager.core.models import new_session_id
from agent_session_manager.core.protocol import (
    CANCEL,
    DEFAULT_TASK_QUEUE,
    RUN_WORKFLOW,
    SESSION_WORKFLOW,
)
from agent_session_manager.core.search_attributes import PENDING_APPROVALS
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.temporal import (
    QUERY_NOT_TAKEN,
    data_converter,
    from_failure,
    is_unreachable,
    temporal_unavailable,
)
from agent_session_manager.core.tools import (
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalResolution,
    PendingApproval,
    RunProgress,
    ToolResult,
    ToolResultSubmission,
    ToolSpec,
)
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.observability.temporal_plugin import temporal_plugins
from agent_session_manager.store import EventStore, open_store
from agent_session_manager.workflows.agent_run import AgentRun
from agent_session_manager.workflows.agent_session import AgentSession

if TYPE_CHECKING:
    from agent_session_manager.client.audit import AuditEntry

_RUN_END_TYPES = frozenset(t.value for t in RUN_TERMINAL_EVENTS.values())

#: ``message_streamed`` kinds that are the model's reasoning: Anthropic's extended thinking,
#: Codex's and Claude Code's reasoning items (other kinds, e.g. a tool's output, are neither).
_THINKING_KINDS = frozenset({"thinking", "reasoning"})

# The keyword defaults of start_session are the model's own, read once, so they cannot drift.
_SPEC_DEFAULTS = SessionSpec(agent_id="defaults")

_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


def _update(
    method: UpdateMethodMultiParam[_Params, Coroutine[Any, Any, _Result]],
) -> UpdateMethodMultiParam[_Params, _Result]:
    """A session update as the client calls it.

    ``workflow.update(name=...)`` types an ``async`` handler by its coroutine, not by what it
    returns (temporalio 1.35; the bare ``@workflow.update`` unwraps it), so ``execute_update``
    would not accept the reference. The object is the same; only its type is corrected, and the
    argument and result types still come from the handler's signature.
    """
    return cast(UpdateMethodMultiParam[_Params, _Result], method)


@dataclass(frozen=True)
class SessionListing:
    """One row of :meth:`SessionClient.list_sessions` (from Temporal visibility)."""

    session_id: str
    workflow_id: str
    agent_id: str | None
    provider: str | None
    status: str | None
    total_tokens: int
    workflow_status: str
    started_at: datetime | None
    cost_micros: int = 0
    """What the session's settled runs cost (``AsmCostMicros``; 1e-6 USD)."""


@dataclass(frozen=True)
class TextDelta:
    """A piece of a run's answer, from attempt ``attempt``; ``str()`` is the text itself."""

    text: str
    attempt: int

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ThinkingDelta:
    """A piece of the model's reasoning (``stream_text(..., thinking=True)`` only)."""

    text: str
    attempt: int

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Reset:
    """Attempt ``attempt`` starts over: the text shown so far for this run is void.

    ``str()`` is a line that says so (and why, when the failed attempt said), so a loop that
    prints every piece shows the restart instead of gluing two attempts' text together.
    """

    attempt: int
    reason: str | None = field(default=None, compare=False)
    """The earlier attempt's error (``code: message``), when it was recorded."""

    def __str__(self) -> str:
        why = f" after {self.reason}" if self.reason else ""
        return f"\n[retrying{why}: attempt {self.attempt} starts over]\n"


#: What :meth:`SessionClient.stream_text` yields.
TextPiece = TextDelta | ThinkingDelta | Reset


@contextmanager
def _translated(session_id: str | None = None, address: str | None = None) -> Iterator[None]:
    """Turn Temporal's exceptions into the domain error they carry.

    An unreachable server is ``temporal_unavailable`` before anything else: a status such as
    ``NOT_FOUND`` read into a transport failure would tell a caller its session is gone.
    """
    try:
        yield
    except AsmError:
        raise
    except (WorkflowUpdateFailedError, WorkflowFailureError) as exc:
        raise from_failure(exc.cause) from exc
    except WorkflowQueryFailedError as exc:
        # The worker could not answer now (e.g. a starved worker's deadlock detector cut the
        # query's activation): nothing is wrong with the request, asking again may work.
        raise error(
            "temporal_unavailable",
            f"the worker could not answer the query ({str(exc)[:300]}); try again shortly",
            retryable=True,
        ) from exc
    except (RPCError, RuntimeError, ConnectionError) as exc:
        if is_unreachable(exc):
            raise temporal_unavailable(exc, address) from exc
        if not isinstance(exc, RPCError):
            raise
        if timed_out(exc):
            raise call_timed_out(exc, session_id) from exc
        if "already completed" in exc.message or "already finished" in exc.message:
            raise error(
                "invalid_transition",
                f"session {session_id} has ended; start a new session",
                details={"session_id": session_id},
            ) from exc
        if exc.status is RPCStatusCode.NOT_FOUND and session_id is not None:
            raise error(
                "session_not_found",
                f"no session {session_id!r}; list them with `asm session ls`",
                details={"session_id": session_id},
            ) from exc
        raise error("internal_error", f"Temporal: {exc.message}") from exc


def timed_out(exc: RPCError) -> bool:
    """Whether the SDK gave up waiting for the answer (its own RPC deadline, 30 s for a query
    by default): ``CANCELLED`` "Timeout expired", which is neither an outage nor an answer."""
    text = exc.message.lower()
    # Or the server's own answer, when its deadline for the query came first.
    return (exc.status is RPCStatusCode.CANCELLED and "timeout expired" in text) or (
        QUERY_NOT_TAKEN in text
    )


def call_timed_out(exc: RPCError, session_id: str | None) -> AsmError:
    """The retryable ``timeout`` for a call Temporal did not answer in time.

    Most often a query no worker answered: the session's worker is down, starting, or too
    busy to take the query's workflow task; nothing is wrong with the request itself.
    """
    what = f"session {session_id}" if session_id else "the call"
    return error(
        "timeout",
        f"no answer from Temporal for {what} in time ({exc.message}): the worker serving it may "
        "be down, starting or overloaded; check that a worker is running on the session's task "
        "queue (`asm worker`, or `asm dev`) and try again",
        details={"session_id": session_id, "cause": exc.message[:300]},
        retryable=True,
    )


class SessionClient:
    """Sessions, runs and events over an injected Temporal client and event store.

    ``store`` may be None for a client that only talks to Temporal (``asm session show``
    needs no database); reading events then raises ``ValueError``. ``patience`` says how the
    waiting calls ride out outages (:class:`client.outages.Patience`).
    """

    def __init__(
        self,
        client: Client,
        store: EventStore | None,
        *,
        task_queue: str = DEFAULT_TASK_QUEUE,
        ui_url: str | None = None,
        patience: Patience | None = None,
    ) -> None:
        self.temporal = client
        self.store = store
        self.task_queue = task_queue
        self.ui_base = ui_url
        self.patience = patience or Patience()
        self._owns_store = False

    @classmethod
    async def connect(
        cls,
        address: str | None = None,
        *,
        namespace: str | None = None,
        api_key: str | None = None,
        tls: bool | TLSConfig | None = None,
        task_queue: str | None = None,
        database_url: str | None = None,
        ui_url: str | None = None,
        profile: str | None = None,
        with_store: bool = True,
        patience: Patience | None = None,
    ) -> SessionClient:
        """A client connected as the environment says, like the ``temporal`` CLI's.

        Reads ``ASM_TEMPORAL_ADDRESS`` / ``TEMPORAL_ADDRESS``, ``ASM_NAMESPACE`` /
        ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS*`` (and the ``temporal``
        config file), ``ASM_TASK_QUEUE`` and ``ASM_DATABASE_URL``; the ``ASM_`` variable wins
        over the ``TEMPORAL_`` one, and a keyword argument over both (the whole table is in
        :mod:`client.connect`). With ``with_store`` (the default) it opens the event store too,
        which :meth:`close` (or ``async with``) closes.

        Raises ``validation_error`` for a setting that cannot be used (naming its variable),
        ``temporal_unavailable`` when Temporal does not answer at the address, and the store's
        own errors (``storage_connection_failed``, a schema to upgrade) for the store.
        """
        settings = resolve(
            address,
            namespace=namespace,
            api_key=api_key,
            tls=tls,
            task_queue=task_queue,
            database_url=database_url,
            ui_url=ui_url,
            profile=profile,
        )
        try:
            temporal = await Client.connect(
                settings.address,
                namespace=settings.namespace,
                api_key=settings.api_key,
                tls=settings.tls,
                rpc_metadata=settings.rpc_metadata,
                data_converter=data_converter,
                plugins=temporal_plugins(),  # OpenTelemetry, when OTEL_TRACES_EXPORTER is set
            )
        except (RPCError, RuntimeError, ConnectionError) as exc:
            source = settings.sources.get("address", "address")
            err = temporal_unavailable(exc, settings.address)
            err.message += f" (address from {source})"
            err.details["address_from"] = source
            raise err from exc
        store = await open_store(settings.database_url) if with_store else None
        client = cls(
            temporal,
            store,
            task_queue=settings.task_queue,
            ui_url=settings.ui_url,
            patience=patience,
        )
        client._owns_store = store is not None
        return client

    async def close(self) -> None:
        """Close the event store :meth:`connect` opened (a store passed in is the caller's)."""
        if self._owns_store and self.store is not None:
            self._owns_store = False
            await self.store.close()

    async def __aenter__(self) -> SessionClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def temporal_address(self) -> str:
        """Where this client reaches Temporal (``host:port``)."""
        return self.temporal.service_client.config.target_host

    def _translated(self, session_id: str | None = None) -> AbstractContextManager[None]:
        return _translated(session_id, self.temporal_address)

    def require_store(self) -> EventStore:
        """The event store; ``ValueError`` for a client made without one (a programming error)."""
        if self.store is None:
            raise ValueError("this SessionClient has no event store: pass one to read events")
        return self.store

    def _where(self, component: Component) -> str:
        if component == "temporal":
            return self.temporal_address
        return self.store.display_url if self.store is not None else "(no store)"

    def _waiter(self) -> OutageWaiter:
        return OutageWaiter(self.patience, self._where)

    # --- sessions ---------------------------------------------------------------------

    async def start_session(
        self,
        spec: SessionSpec | None = None,
        /,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        provider: str = _SPEC_DEFAULTS.provider,
        model: str | None = None,
        system_prompt: str | None = None,
        metadata: Mapping[str, object] | None = None,
        tags: list[str] | None = None,
        provider_options: Mapping[str, object] | None = None,
        mock: MockScript | None = None,
        activate: bool = _SPEC_DEFAULTS.activate,
        retry: RetrySettings | None = None,
        run_timeout_seconds: float | None = _SPEC_DEFAULTS.run_timeout_seconds,
        heartbeat_timeout_seconds: float = _SPEC_DEFAULTS.heartbeat_timeout_seconds,
        idle_timeout_seconds: float | None = None,
        max_concurrent_runs: int = _SPEC_DEFAULTS.max_concurrent_runs,
        max_queued_runs: int = _SPEC_DEFAULTS.max_queued_runs,
        multitask_strategy: MultitaskStrategy = _SPEC_DEFAULTS.multitask_strategy,
        continue_as_new_after_runs: int = _SPEC_DEFAULTS.continue_as_new_after_runs,
        tools: Sequence[str] = (),
        client_tools: Sequence[ToolSpec] = (),
        tool_policies: Mapping[str, ApprovalPolicy] | None = None,
        max_turns: int = _SPEC_DEFAULTS.max_turns,
        tenant: str | None = None,
    ) -> SessionView:
        """Start an ``AgentSession`` and wait until it has started (or failed to).

        The start itself fails at once if Temporal cannot be reached; once it is sent, the
        wait for the session to say it started rides out an outage (see :attr:`patience`).
        Give a :class:`SessionSpec`, or its fields as keywords (``agent_id`` is required
        then); the keywords are ignored when a spec is given. ``tenant`` (given either way)
        is the session's one tenant: it is recorded as the ``AsmTenant`` search attribute, so
        visibility can list a tenant's sessions, and as the ``tenant:<name>`` tag, which the
        worker's budgets, the cost ledger and ``asm usage --by tenant`` read. A session whose
        tags already name a tenant is that tenant's; a ``tenant:`` tag naming another tenant
        than ``tenant=`` is a ``validation_error``. The session's claim records the tenant in
        the store (``EventStore.claim_session``), so the HTTP gateway's keys of that tenant
        reach the session whether it was started here or through the gateway (which sets
        ``tenant`` for its keys).
        """
        if tenant is not None:
            tenant = check_tenant(tenant)
        if spec is None:
            system_ref = await self._by_reference(system_prompt)
            spec = SessionSpec(
                agent_id=agent_id,  # None: the model reports it as required
                session_id=session_id,
                provider=provider,
                model=model,
                system_prompt=None if system_ref else system_prompt,
                system_prompt_ref=system_ref,
                metadata=dict(metadata or {}),
                tags=list(tags or []),
                provider_options=dict(provider_options or {}),
                mock=mock,
                activate=activate,
                retry=retry or RetrySettings(),
                run_timeout_seconds=run_timeout_seconds,
                heartbeat_timeout_seconds=heartbeat_timeout_seconds,
                idle_timeout_seconds=idle_timeout_seconds,
                max_concurrent_runs=max_concurrent_runs,
                max_queued_runs=max_queued_runs,
                multitask_strategy=multitask_strategy,
                continue_as_new_after_runs=continue_as_new_after_runs,
                tools=list(tools),
                client_tools=list(client_tools),
                tool_policies=dict(tool_policies or {}),
                max_turns=max_turns,
            )
        elif (system_ref := await self._by_reference(spec.system_prompt)) is not None:
            spec = spec.model_copy(update={"system_prompt": None, "system_prompt_ref": system_ref})
        tags, tenant = session_tenant(spec.tags, tenant)
        session_id = spec.session_id or new_session_id(uuid.uuid4())
        spec = spec.model_copy(update={"session_id": session_id, "tags": tags})
        attrs = TypedSearchAttributes(
            [
                SearchAttributePair(search_attributes.SESSION_ID, session_id),
                SearchAttributePair(search_attributes.AGENT_ID, spec.agent_id),
                SearchAttributePair(search_attributes.PROVIDER, spec.provider),
                SearchAttributePair(search_attributes.STATUS, "pending"),
                SearchAttributePair(search_attributes.TOTAL_TOKENS, 0),
                *([SearchAttributePair(search_attributes.TAGS, spec.tags)] if spec.tags else []),
                *([SearchAttributePair(search_attributes.TENANT, tenant)] if tenant else []),
            ]
        )
        with self._translated(session_id):
            handle = await self.temporal.start_workflow(
                AgentSession.run,
                spec,
                id=session_workflow_id(session_id),
                task_queue=self.task_queue,
                search_attributes=attrs,
                memo={"agent_id": spec.agent_id, "tags": spec.tags},
                static_summary=f"agent {spec.agent_id} · {spec.provider}",
            )
        return await self._wait_started(handle, session_id)

    async def _wait_started(
        self, handle: WorkflowHandle[AgentSession, SessionSummary], session_id: str
    ) -> SessionView:
        # The session is started: a connection dropped while we wait for it to say so (a
        # server's GOAWAY cutting a long query, an outage) is waited out like any outage.
        waiter = self._waiter()

        async def look() -> SessionView:
            with self._translated(session_id):
                desc = await handle.describe()
                if desc.status is not WorkflowExecutionStatus.RUNNING:
                    await handle.result()  # raises the typed failure
                return await handle.query(AgentSession.describe)

        delay = 0.01
        while not (view := await waiter.call(look)).ready:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        return view

    async def _by_reference(self, content: str | None) -> ContentRef | None:
        """Store ``content`` if it is over the inline limit; its reference, else None."""
        if content is None or not travels_by_reference(content):
            return None
        if self.store is None:
            raise ValueError(
                "this SessionClient has no event store: pass one to send a prompt over 4 KiB"
            )
        return await self.store.put_content(content)

    async def _with_output(self, result: RunResult) -> RunResult:
        """``result`` with a reply that came by reference read back into ``output``."""
        if result.output_ref is None:
            return result
        text = await self.require_store().get_text(result.output_ref)
        return result.model_copy(update={"output": text})

    def _handle(self, session_id: str) -> WorkflowHandle[AgentSession, SessionSummary]:
        return self.temporal.get_workflow_handle_for(
            AgentSession.run, session_workflow_id(session_id)
        )

    async def describe(self, session_id: str) -> SessionView:
        """The session's status, runs and totals (the ``describe`` query)."""
        with self._translated(session_id):
            return await self._handle(session_id).query(AgentSession.describe)

    async def _transition(
        self,
        update: UpdateMethodMultiParam[[AgentSession, Transition], SessionView],
        session_id: str,
        arg: Transition,
    ) -> SessionView:
        with self._translated(session_id):
            return await self._handle(session_id).execute_update(update, arg)

    async def activate(self, session_id: str, reason: str | None = None) -> SessionView:
        """``pending → active``."""
        return await self._transition(
            _update(AgentSession.activate), session_id, Transition(reason=reason)
        )

    async def pause(self, session_id: str, reason: str | None = None) -> SessionView:
        """``active → paused``: new runs are held."""
        return await self._transition(
            _update(AgentSession.pause), session_id, Transition(reason=reason)
        )

    async def resume(self, session_id: str, reason: str | None = None) -> SessionView:
        """``paused → active``: held runs proceed."""
        return await self._transition(
            _update(AgentSession.resume), session_id, Transition(reason=reason)
        )

    async def complete_session(self, session_id: str, reason: str | None = None) -> SessionView:
        """End the session ``completed``."""
        return await self._transition(
            _update(AgentSession.complete), session_id, Transition(reason=reason)
        )

    async def fail_session(
        self,
        session_id: str,
        reason: str | None = None,
        error: Mapping[str, object] | None = None,
    ) -> SessionView:
        """End the session ``failed`` (active runs are cancelled)."""
        arg = Transition(reason=reason, error=dict(error) if error is not None else None)
        return await self._transition(_update(AgentSession.fail), session_id, arg)

    async def cancel_session(self, session_id: str, reason: str | None = None) -> None:
        """Signal ``cancel``: every run is cancelled, then the session ends ``cancelled``.

        Its workflow ends Canceled in Temporal, the reason as the cancel request's cause
        (:meth:`result` still returns its summary).
        """
        with self._translated(session_id):
            # Signals reach the session through one dynamic handler that records a malformed one
            # instead of failing the workflow task, so there is no method to refer to: the name
            # comes from the protocol module and the payload is the contract's model.
            await self._handle(session_id).signal(CANCEL, CancelSession(reason=reason))

    async def result(self, session_id: str) -> SessionSummary:
        """Wait for the session workflow to end and return its summary (through outages).

        A cancelled session returns its summary too (status ``cancelled``), though its
        workflow ends Canceled, with no result: the summary is then its ``describe``.
        """
        handle = self._handle(session_id)

        async def once() -> SessionSummary:
            with self._translated(session_id):
                try:
                    return await handle.result()
                except WorkflowFailureError as exc:
                    if from_failure(exc.cause).code != "cancelled":
                        raise
                    # Answered by a worker replaying the closed workflow.
                    view = await handle.query(AgentSession.describe)
                    return SessionSummary.model_validate(view.model_dump())

        return await self._waiter().call(once)

    async def list_sessions(
        self, query: str | None = None, limit: int = 100
    ) -> list[SessionListing]:
        """Sessions from Temporal visibility, newest first; ``query`` is extra visibility SQL."""
        q = f'WorkflowType = "{SESSION_WORKFLOW}"' + (f" AND ({query})" if query else "")
        out: list[SessionListing] = []
        with self._translated():
            async for wf in self.temporal.list_workflows(q, limit=limit):
                sa = wf.typed_search_attributes
                out.append(
                    SessionListing(
                        session_id=sa.get(search_attributes.SESSION_ID)
                        or wf.id.removeprefix("session-"),
                        workflow_id=wf.id,
                        agent_id=sa.get(search_attributes.AGENT_ID),
                        provider=sa.get(search_attributes.PROVIDER),
                        status=sa.get(search_attributes.STATUS),
                        total_tokens=sa.get(search_attributes.TOTAL_TOKENS) or 0,
                        workflow_status=wf.status.name if wf.status else "UNKNOWN",
                        started_at=wf.start_time,
                        cost_micros=sa.get(search_attributes.COST_MICROS) or 0,
                    )
                )
        return out

    # --- runs -------------------------------------------------------------------------

    async def submit_run(
        self,
        session_id: str,
        prompt: str | None = None,
        /,
        *,
        request: RunRequest | None = None,
        run_id: str | None = None,
        messages: Sequence[Message] = (),
        model: str | None = None,
        timeout_seconds: float | None = None,
        retry: RetrySettings | None = None,
        required_capabilities: Sequence[CapabilityType] = (),
        optional_capabilities: Sequence[CapabilityType] = (),
        strategy: MultitaskStrategy | None = None,
        provider_options: Mapping[str, object] | None = None,
        mock: MockScript | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> RunRef:
        """Submit a run (``submit_run`` update); returns once it is started or queued.

        Give the prompt and a :class:`RunRequest`'s fields as keywords, or a whole ``request``
        (then the others are ignored). A prompt over the inline limit is stored in the event
        store first and sent by reference, so its size is bounded only by the store.
        """
        if request is None:
            prompt_ref = await self._by_reference(prompt)
            request = RunRequest(
                run_id=run_id,
                prompt=None if prompt_ref else prompt,
                prompt_ref=prompt_ref,
                messages=list(messages),
                model=model,
                timeout_seconds=timeout_seconds,
                retry=retry,
                required_capabilities=list(required_capabilities),
                optional_capabilities=list(optional_capabilities),
                strategy=strategy,
                provider_options=dict(provider_options or {}),
                mock=mock,
                metadata=dict(metadata or {}),
            )
        elif (prompt_ref := await self._by_reference(request.prompt)) is not None:
            request = request.model_copy(update={"prompt": None, "prompt_ref": prompt_ref})
        with self._translated(session_id):
            return await self._handle(session_id).execute_update(
                _update(AgentSession.submit_run), request
            )

    async def wait_run(self, run_id: str, session_id: str | None = None) -> RunResult:
        """Wait for a run to end; failed, timed-out and cancelled runs return, not raise.

        A reply that came back by reference (``output_ref``) is read from the event store
        into ``output``. Keeps waiting through outages of Temporal and of the store (see
        :attr:`patience`): the run goes on in the worker meanwhile. Raises ``run_not_found``
        only when Temporal answered that there is no such run.
        """
        handle = self.temporal.get_workflow_handle_for(AgentRun.run, run_workflow_id(run_id))
        waiter = self._waiter()
        while True:
            try:
                result = await self._run_outcome(handle, run_id, session_id)
            except AsmError as err:
                await waiter.wait_out(err)
                continue
            waiter.recovered()
            if result is not None:
                return result
            await asyncio.sleep(0.1)  # queued in its session: not started yet

    async def _run_outcome(
        self,
        handle: WorkflowHandle[AgentRun, RunResult],
        run_id: str,
        session_id: str | None,
    ) -> RunResult | None:
        """One try at a run's result; None while it is queued. Raises typed errors only."""
        try:
            return await self._with_output(await handle.result())
        except WorkflowFailureError as exc:
            failure = from_failure(exc.cause)
        except (RPCError, RuntimeError, ConnectionError) as exc:
            if is_unreachable(exc):
                raise temporal_unavailable(exc, self.temporal_address) from exc
            if not isinstance(exc, RPCError):
                raise
            if timed_out(exc):
                raise call_timed_out(exc, session_id) from exc
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise error("internal_error", f"Temporal: {exc.message}") from exc
            # Temporal answered that the run's workflow does not exist (yet).
            return await self._queued_outcome(run_id, session_id, exc)
        row = await self.store.get_run(run_id) if self.store is not None else None
        result = run_result_from_error(
            failure,
            run_id=run_id,
            session_id=row.session_id if row else (session_id or ""),
            usage=TokenUsage.model_validate(row.usage) if row and row.usage else None,
        )
        if row is not None and row.status is RunStatus.CANCELLED and "run" not in failure.details:
            # A run's workflow ends Canceled, which carries no result: what the run recorded
            # (the cancel's reason, the attempts it made) is in its row.
            result = result.model_copy(
                update={"error": row.error or result.error, "attempts": row.attempts}
            )
        return result

    async def _queued_outcome(
        self, run_id: str, session_id: str | None, cause: RPCError
    ) -> RunResult | None:
        if session_id is None:
            raise error("run_not_found", f"no run {run_id!r}") from cause
        view = await self.describe(session_id)
        run_view = next((r for r in view.runs if r.run_id == run_id), None)
        if run_view is None:
            raise error("run_not_found", f"no run {run_id!r} in {session_id}") from cause
        if run_view.status.is_terminal:  # cancelled while queued: no workflow ever ran
            return RunResult(
                run_id=run_id,
                session_id=session_id,
                status=run_view.status,
                error=run_view.error,
            )
        return None

    async def run(
        self,
        session_id: str,
        prompt: str | None = None,
        /,
        *,
        request: RunRequest | None = None,
        run_id: str | None = None,
        messages: Sequence[Message] = (),
        model: str | None = None,
        timeout_seconds: float | None = None,
        retry: RetrySettings | None = None,
        required_capabilities: Sequence[CapabilityType] = (),
        optional_capabilities: Sequence[CapabilityType] = (),
        strategy: MultitaskStrategy | None = None,
        provider_options: Mapping[str, object] | None = None,
        mock: MockScript | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> RunResult:
        """Submit a run and wait for its result (the arguments are :meth:`submit_run`'s)."""
        ref = await self.submit_run(
            session_id,
            prompt,
            request=request,
            run_id=run_id,
            messages=messages,
            model=model,
            timeout_seconds=timeout_seconds,
            retry=retry,
            required_capabilities=required_capabilities,
            optional_capabilities=optional_capabilities,
            strategy=strategy,
            provider_options=provider_options,
            mock=mock,
            metadata=metadata,
        )
        return await self.wait_run(ref.run_id, session_id)

    async def cancel_run(self, session_id: str, run_id: str, reason: str | None = None) -> RunRef:
        """Cancel a run and wait until it has stopped; a finished run is a no-op that says so."""
        with self._translated(session_id):
            return await self._handle(session_id).execute_update(
                _update(AgentSession.cancel_run), CancelRun(run_id=run_id, reason=reason)
            )

    # --- the agent loop: approvals and client-side tools ----------------------------------

    async def describe_run(self, run_id: str) -> RunProgress | None:
        """Where a run's agent loop is: pending approvals and client-side calls (``None``
        for a run without tools)."""
        handle = self.temporal.get_workflow_handle_for(AgentRun.run, run_workflow_id(run_id))
        with self._translated():
            return await handle.query(AgentRun.describe_run)

    async def pending_approvals(self, session_id: str | None = None) -> list[PendingApproval]:
        """Approvals waiting for a human: runs found by ``AsmPendingApprovals > 0`` (of one
        session, or all), each asked for its current list (visibility may lag a moment)."""
        query = f"WorkflowType = '{RUN_WORKFLOW}' AND {PENDING_APPROVALS.name} > 0"
        if session_id is not None:
            query += f" AND {search_attributes.SESSION_ID.name} = '{check_id(session_id)}'"
        found: list[PendingApproval] = []
        with self._translated(session_id):
            async for execution in self.temporal.list_workflows(query):
                run_id = execution.id.removeprefix("run-")
                try:
                    progress = await self.describe_run(run_id)
                except AsmError:  # it ended between the listing and the query
                    continue
                if progress is not None:
                    found.extend(progress.pending_approvals)
        return found

    async def approve(
        self,
        run_id: str,
        digest: str,
        *,
        call_id: str | None = None,
        reason: str | None = None,
        by: str | None = None,
    ) -> ApprovalResolution:
        """Grant the pending approval with ``digest`` (``approval_already_resolved`` if it was
        decided, ``approval_mismatch`` if ``call_id``'s digest is another one)."""
        decision = ApprovalDecision(digest=digest, call_id=call_id, reason=reason, by=by)
        return await self._decide(run_id, decision, _update(AgentRun.approve))

    async def deny(
        self,
        run_id: str,
        digest: str,
        *,
        call_id: str | None = None,
        reason: str | None = None,
        by: str | None = None,
    ) -> ApprovalResolution:
        """Deny the pending approval with ``digest`` (the model is told it was not approved)."""
        decision = ApprovalDecision(digest=digest, call_id=call_id, reason=reason, by=by)
        return await self._decide(run_id, decision, _update(AgentRun.deny))

    async def _decide(
        self,
        run_id: str,
        decision: ApprovalDecision,
        update: UpdateMethodMultiParam[Any, ApprovalResolution],
    ) -> ApprovalResolution:
        handle = self.temporal.get_workflow_handle_for(AgentRun.run, run_workflow_id(run_id))
        try:
            with self._translated():
                return await handle.execute_update(update, decision)
        except AsmError as err:
            if err.code != "invalid_transition":
                raise
            # The run has ended, and a run resolves every approval before it ends.
            raise error(
                "approval_already_resolved",
                f"run {run_id} has ended: its approvals were resolved (see its events)",
                details={"run_id": run_id, "digest": decision.digest},
            ) from err

    async def submit_tool_result(
        self, run_id: str, call_id: str, output: str, *, is_error: bool = False
    ) -> ToolResult:
        """Hand a run the result of a client-side tool call it waits for."""
        submission = ToolResultSubmission(call_id=call_id, output=output, is_error=is_error)
        handle = self.temporal.get_workflow_handle_for(AgentRun.run, run_workflow_id(run_id))
        try:
            with self._translated():
                return await handle.execute_update(_update(AgentRun.submit_tool_result), submission)
        except AsmError as err:
            if err.code != "invalid_transition":
                raise
            # The run has ended (every client call it made was answered or cancelled first).
            raise error(
                "invalid_transition",
                f"run {run_id} has ended: it takes no more tool results (see its events)",
                details={"run_id": run_id, "call_id": call_id},
            ) from err

    # --- events -----------------------------------------------------------------------

    def stream_events(
        self,
        session_id: str,
        after_seq: int = 0,
        *,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        follow: bool = True,
        until: Callable[[Event], bool] | None = None,
    ) -> AsyncIterator[Event]:
        """Events after ``after_seq``; with ``follow`` keep tailing until ``until(event)``.

        Store outages are waited out (see :attr:`patience`), resuming from the cursor."""
        return read_events(
            self.require_store(),
            session_id,
            after_seq,
            run_id=run_id,
            types=types,
            follow=follow,
            until=until,
            patience=self.patience,
        )

    async def stream_text(
        self, session_id: str, run_id: str, after_seq: int = 0, *, thinking: bool = False
    ) -> AsyncIterator[TextPiece]:
        """A run's answer as it streams, ending with the run; every piece prints as itself.

        Yields :class:`TextDelta` pieces, :class:`ThinkingDelta` pieces too when ``thinking``,
        and a :class:`Reset` when a retried attempt starts over (discard what you showed; its
        ``str()`` says so). ``async for piece in ...: print(piece, end="")`` is a complete,
        retry-proof printer.
        """
        attempt = 0
        failure: str | None = None
        async for event in self.stream_events(
            session_id,
            after_seq,
            run_id=run_id,
            until=lambda e: e.type.value in _RUN_END_TYPES,
        ):
            if event.attempt > attempt:
                if attempt:
                    yield Reset(attempt=event.attempt, reason=failure)
                attempt = event.attempt
                failure = None
            if event.attempt != attempt:
                continue  # a straggler of an attempt already superseded
            if event.type is EventType.ERROR_OCCURRED:
                failure = f"{event.data.get('code')}: {str(event.data.get('message'))[:200]}"
            elif event.type is EventType.MESSAGE_STREAMED:
                text = str(event.data.get("text", ""))
                if event.data.get("kind") is None:
                    yield TextDelta(text=text, attempt=attempt)
                elif thinking and event.data.get("kind") in _THINKING_KINDS:
                    yield ThinkingDelta(text=text, attempt=attempt)

    async def audit_log(
        self,
        session_id: str | None = None,
        *,
        run_id: str | None = None,
        since: datetime | None = None,
        types: Sequence[str] | None = None,
    ) -> list[AuditEntry]:
        """Who/what changed a session's or run's status (update name, client identity), oldest
        first; see :mod:`client.audit` (``write_jsonl`` exports it as JSON Lines)."""
        from agent_session_manager.client.audit import audit_log

        return await audit_log(
            self.require_store(),
            session_id,
            run_id=run_id,
            since=since,
            types=types,
            temporal=self.temporal,
        )

    # --- links ------------------------------------------------------------------------

    def ui_link(self, session_id: str, namespace: str = "default") -> str | None:
        """The session's page in the Temporal UI, when the UI address is known."""
        if not self.ui_base:
            return None
        wf = quote(session_workflow_id(session_id), safe="")
        return f"{self.ui_base.rstrip('/')}/namespaces/{namespace}/workflows/{wf}"


#: A store blip shorter than this is absorbed inside the store's own follow, unseen; a longer
#: outage comes back here to be reported and waited out with the caller's patience.
STORE_BLIP_SECONDS = 1.0


async def read_events(
    store: EventStore,
    session_id: str,
    after_seq: int = 0,
    *,
    run_id: str | None = None,
    types: Sequence[str] | None = None,
    follow: bool = True,
    until: Callable[[Event], bool] | None = None,
    patience: Patience | None = None,
) -> AsyncIterator[Event]:
    """A session's events from the store alone (no Temporal needed): a page walk, or a tail.

    A store outage is waited out with ``patience`` (reported through its ``on_progress``);
    reading resumes after the last event delivered, so none is lost or delivered twice.
    """
    waiter = OutageWaiter(patience or Patience(), lambda _component: store.display_url)
    cursor = after_seq
    # Plain page reads, not the live tail, after an outage: they fail (or answer) at once, so
    # the stream resumes as soon as the store is back, without waiting for the store's
    # listener to reconnect.
    catch_up = not follow
    while True:
        try:
            if catch_up:
                while batch := await store.events(
                    session_id,
                    after_seq=cursor,
                    run_id=run_id,
                    types=types,
                    must_exist=not follow,
                ):
                    waiter.recovered()
                    for event in batch:
                        cursor = event.seq
                        yield event
                        if follow and until is not None and until(event):
                            return
                if not follow:
                    return
                catch_up = False
            tail = store.follow(
                session_id,
                cursor,
                run_id=run_id,
                types=types,
                reconnect_timeout=STORE_BLIP_SECONDS,
            )
            # aclosing: leaving early must release the live-tail subscription at once.
            async with aclosing(tail) as events:
                async for event in events:
                    waiter.recovered()
                    cursor = event.seq
                    yield event
                    if until is not None and until(event):
                        return
        except AsmError as err:
            await waiter.wait_out(err)
            catch_up = True
