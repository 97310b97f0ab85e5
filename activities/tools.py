"""Tools on the worker: defining one in Python, finding them, and the ``execute_tool`` activity.

A tool is a function plus its input: a pydantic model (the schema the model sees is the
model's JSON schema, and the arguments are validated into it) or a plain JSON schema (the
function gets the arguments as a dict)::

    class Weather(BaseModel):
        city: str

    @tool(description="Current weather in a city", approval="ask")
    async def weather(args: Weather) -> str:
        ...

Tools reach a worker through the ``agent_session_manager.tools`` entry-point group (like
providers), the ``ASM_TOOLS`` setting (``module:attr`` paths) or ``serve(tools=...)``. The pure
description (:class:`core.tools.ToolSpec`) is what runs and the model see; the function stays
here.

``execute_tool`` runs one call as its own activity, with the tool's own timeout, heartbeat
timeout and attempts (set by ``AgentRun``), so a worker crash re-runs only the call that was
in flight. Every attempt writes ``tool_call_started`` and ``tool_call_completed`` /
``tool_call_failed`` (with the attempt) to the event store, in one transaction when the tool
ends within the sink's flush interval; a long output is stored by reference
(:mod:`core.content`) and the result carries the reference.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, get_type_hints

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from temporalio import activity

from agent_session_manager.core.content import travels_by_reference
from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.events import EventDraft, EventType, activity_event_id
from agent_session_manager.core.protocol import EXECUTE_TOOL_ACTIVITY
from agent_session_manager.core.temporal import to_application_error
from agent_session_manager.core.tools import (
    ApprovalPolicy,
    ToolCallRequest,
    ToolExecutor,
    ToolInvocation,
    ToolResult,
    ToolSpec,
)
from agent_session_manager.store import EventStore

ENTRY_POINT_GROUP = "agent_session_manager.tools"

#: How much of a failing tool's message reaches the model and the event log.
_MAX_ERROR_CHARS = 2000

_log = logging.getLogger(__name__)

ToolFunction = Callable[..., Any]


@dataclass(frozen=True)
class Tool:
    """A tool the worker can run: its description and the function behind it."""

    spec: ToolSpec
    fn: ToolFunction | None
    """``None`` for a tool the application runs (``executor="client"``)."""
    input_model: type[BaseModel] | None = None

    @property
    def name(self) -> str:
        """The tool's name, as the model calls it."""
        return self.spec.name

    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the function on ``arguments``; its result as text.

        ``invalid_input`` when the arguments do not fit the input model (the model is told;
        retrying would not help). A synchronous function runs in a thread, so it never blocks
        the event loop (and the activity's heartbeats).
        """
        if self.fn is None:
            raise error("invalid_operation", f"tool {self.name!r} is run by the application")
        arg: Any = arguments
        if self.input_model is not None:
            try:
                arg = self.input_model.model_validate(arguments)
            except PydanticValidationError as exc:
                raise error(
                    "invalid_input",
                    f"arguments for tool {self.name!r} do not fit its input: "
                    f"{exc.errors(include_url=False, include_input=False)}",
                    retryable=False,
                ) from None
        if inspect.iscoroutinefunction(self.fn):
            out = await self.fn(arg)
        else:
            out = await asyncio.to_thread(self.fn, arg)
            if inspect.isawaitable(out):
                out = await out
        return _as_text(out)


def _as_text(out: Any) -> str:
    if isinstance(out, str):
        return out
    if isinstance(out, BaseModel):
        return out.model_dump_json()
    return json.dumps(out, default=str)


def tool(
    fn: ToolFunction | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    input_model: type[BaseModel] | None = None,
    input_schema: dict[str, Any] | None = None,
    approval: ApprovalPolicy = "always",
    executor: ToolExecutor = "worker",
    timeout_seconds: float = 60.0,
    heartbeat_timeout_seconds: float = 10.0,
    max_attempts: int = 3,
    approval_timeout_seconds: float | None = None,
    version: str = "1",
) -> Any:
    """Make a :class:`Tool` of ``fn`` (as ``@tool`` or ``@tool(...)``).

    The input is ``input_model``, else the pydantic model ``fn``'s first parameter is
    annotated with, else ``input_schema`` (``fn`` gets a dict). The description defaults to
    ``fn``'s docstring.
    """

    def make(f: ToolFunction) -> Tool:
        model = input_model or _annotated_model(f)
        schema = input_schema
        if schema is None:
            schema = (
                model.model_json_schema()
                if model is not None
                else {"type": "object", "properties": {}}
            )
        spec = ToolSpec(
            name=name or f.__name__,
            description=description if description is not None else inspect.getdoc(f) or "",
            input_schema=schema,
            approval=approval,
            executor=executor,
            timeout_seconds=timeout_seconds,
            heartbeat_timeout_seconds=heartbeat_timeout_seconds,
            max_attempts=max_attempts,
            approval_timeout_seconds=approval_timeout_seconds,
            version=version,
        )
        return Tool(spec=spec, fn=f, input_model=model)

    return make(fn) if fn is not None else make


def _annotated_model(fn: ToolFunction) -> type[BaseModel] | None:
    params = list(inspect.signature(fn).parameters.values())
    if not params:
        return None
    hints = get_type_hints(fn)
    hint = hints.get(params[0].name)
    return hint if isinstance(hint, type) and issubclass(hint, BaseModel) else None


def _tools_of(obj: Any) -> list[Tool]:
    """What an entry point or ``ASM_TOOLS`` path names: a Tool, tools, or a factory of them."""
    if callable(obj) and not isinstance(obj, Tool):
        obj = obj()
    if isinstance(obj, Tool):
        return [obj]
    if isinstance(obj, Iterable):
        found = list(obj)
        if all(isinstance(t, Tool) for t in found):
            return found
    raise TypeError(f"expected a Tool, tools, or a factory of them; got {type(obj).__name__}")


def discover_tools(paths: Sequence[str] = ()) -> dict[str, Tool]:
    """Every tool installed (the entry-point group) plus ``paths`` (``module:attr``), by name.

    A broken entry point is logged and skipped (a third-party package must not take the worker
    down); a broken path the operator named is an error.
    """
    found: dict[str, Tool] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            tools = _tools_of(ep.load())
        except Exception as exc:
            _log.warning("tool entry point %s failed to load: %s", ep.name, exc)
            continue
        found.update((t.name, t) for t in tools)
    for path in paths:
        module, _, attr = path.partition(":")
        if not module or not attr:
            raise ValueError(f"ASM_TOOLS entry {path!r} is not 'module:attribute'")
        found.update((t.name, t) for t in _tools_of(getattr(importlib.import_module(module), attr)))
    return found


def call_scope(run_id: str, call_id: str) -> str:
    """The event-id scope of one tool call (hashed: a call id may be 255 characters)."""
    return f"{run_id}/t{hashlib.sha256(call_id.encode()).hexdigest()[:16]}"


@dataclass
class ToolActivities:
    """The ``execute_tool`` activity; dependencies are injected by the worker."""

    store: EventStore
    tools: dict[str, Tool]
    heartbeat_every: float = 1.0
    #: How long ``tool_call_started`` may wait to share the call's last write (the provider
    #: sink's delta batching interval): a tool that ends sooner costs one transaction, not two.
    flush_interval: float = 0.05

    @activity.defn(name=EXECUTE_TOOL_ACTIVITY)
    async def execute_tool(self, inv: ToolInvocation) -> ToolResult:
        """Run one attempt of one tool call; record it; return its result (long: by reference).

        ``tool_call_started`` is written once the call has run for ``flush_interval`` (a
        follower sees a slow tool running), or else together with the call's end, in one
        transaction, before it. Like the provider's unflushed deltas, a call whose worker dies
        within the interval leaves no event; the next attempt records its own.

        A failure raises ``ApplicationError`` (type ``tool_execution_failed``, retried by the
        tool's policy; ``invalid_input`` and ``tool_not_found`` are not retried): the run turns
        the last failure into a failed result the model is told about.
        """
        attempt = activity.info().attempt
        call = inv.call
        scope = call_scope(inv.run_id, call.call_id)
        index = 0

        def draft(type: EventType, data: dict[str, Any]) -> EventDraft:
            nonlocal index
            index += 1
            return EventDraft(
                id=activity_event_id(scope, attempt, index),
                session_id=inv.session_id,
                run_id=inv.run_id,
                attempt=attempt,
                type=type,
                data={"id": call.call_id, "name": call.name, "attempt": attempt, **data},
                provider=inv.provider,
            )

        # Until written, tool_call_started goes out with whatever the call writes next.
        unwritten = [draft(EventType.TOOL_CALL_STARTED, {"executor": "worker"})]
        try:
            output = await self._heartbeating(self._call(call), unwritten)
        except asyncio.CancelledError:
            # Cancelled (the run was cancelled, or its deadline passed): say so, then let go.
            cancelled = draft(
                EventType.TOOL_CALL_FAILED, {"error": "cancelled", "code": "cancelled"}
            )
            await asyncio.shield(self._append_quietly([*unwritten, cancelled]))
            raise
        except Exception as exc:
            err = (
                exc
                if isinstance(exc, AsmError)
                else error(
                    "tool_execution_failed",
                    f"tool {call.name!r} raised {type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS],
                    retryable=True,
                )
            )
            failed = draft(
                EventType.TOOL_CALL_FAILED,
                {"error": err.message[:_MAX_ERROR_CHARS], "code": err.code},
            )
            await self.store.append([*unwritten, failed])
            raise to_application_error(err) from None
        result = ToolResult(
            call_id=call.call_id, name=call.name, status="completed", attempt=attempt
        )
        if travels_by_reference(output):
            result.output_ref = await self.store.put_content(output)
            data: dict[str, Any] = {"output_ref": result.output_ref.model_dump()}
        else:
            result.output = output
            data = {"output": output}
        await self.store.append([*unwritten, draft(EventType.TOOL_CALL_COMPLETED, data)])
        return result

    async def _call(self, call: ToolCallRequest) -> str:
        """The tool's output for ``call`` (its arguments read back when stored by reference)."""
        found = self.tools.get(call.name)
        if found is None or found.fn is None:
            raise error(
                "tool_not_found",
                f"tool {call.name!r} is not installed on this worker",
                retryable=False,
            )
        arguments = call.input
        if arguments is None and call.input_ref is not None:
            arguments = json.loads(await self.store.get_text(call.input_ref))
        return await found.call(arguments or {})

    async def _heartbeating(self, work: Awaitable[str], unwritten: list[EventDraft]) -> str:
        """Await ``work`` while heartbeating, so a cancel reaches it within the throttle;
        once it has run for ``flush_interval``, write ``unwritten`` (then empty it)."""
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({task}, timeout=self.flush_interval)
            if not done:
                # Emptied only once written: a write cut by a cancel is sent again with the
                # cancellation (a retried append skips the ids that landed), in order.
                await self.store.append(unwritten)
                unwritten.clear()
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.heartbeat_every)
                if done:
                    return task.result()
                activity.heartbeat()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _append_quietly(self, events: list[EventDraft]) -> None:
        try:
            await self.store.append(events)
        except Exception:
            _log.warning(
                "could not record the cancelled tool call %s", events[-1].id, exc_info=True
            )


__all__ = [
    "ENTRY_POINT_GROUP",
    "Tool",
    "ToolActivities",
    "call_scope",
    "discover_tools",
    "tool",
]
