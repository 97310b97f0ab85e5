"""The provider activity's side of the agent loop: which tools a model call offers, the tool
calls it answered with, and the tool results the next call sends.

The loop itself is ``AgentRun``'s (:mod:`workflows.agent_run`): model call, tool calls, model
call, each its own activity. Here is only what one model call needs: the tools of its run
resolved against the worker's registry (an unknown name fails the run, ``tool_not_found``),
the reply's ``tool_use`` blocks as :class:`~core.tools.ToolCallRequest` (arguments hashed, and
stored by reference when long), and the results as the user message the model expects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent_session_manager.activities.providers.base import ProviderResult
from agent_session_manager.core.content import travels_by_reference
from agent_session_manager.core.contract import Message, ProviderCall
from agent_session_manager.core.errors import error
from agent_session_manager.core.tools import ToolCallRequest, ToolResult, ToolSpec, sha256_of
from agent_session_manager.store import EventStore


@dataclass(frozen=True)
class AgentLoop:
    """The tools one model call offers, by name."""

    specs: dict[str, ToolSpec]

    @classmethod
    def of(cls, call: ProviderCall, installed: dict[str, ToolSpec]) -> AgentLoop:
        """The run's tools: worker tools by name, then the application's own."""
        specs: dict[str, ToolSpec] = {}
        for name in call.spec.tools:
            spec = installed.get(name)
            if spec is None:
                raise error(
                    "tool_not_found",
                    f"tool {name!r} is not installed on this worker; install the package that "
                    "provides it (entry-point group agent_session_manager.tools) or ASM_TOOLS",
                    details={"tool": name},
                    retryable=False,
                )
            specs[name] = spec
        for spec in call.spec.client_tools:
            specs[spec.name] = spec.model_copy(update={"executor": "client"})
        return cls(specs)

    @property
    def offered(self) -> list[dict[str, Any]]:
        """The tools as the model request lists them."""
        return [spec.for_model() for spec in self.specs.values()]

    async def calls(self, store: EventStore, result: ProviderResult) -> list[ToolCallRequest]:
        """The reply's tool calls, when the model stopped to have tools run; else ``[]``."""
        if not self.specs or result.stop_reason != "tool_use":
            return []
        calls: list[ToolCallRequest] = []
        for block in result.content:
            if block.get("type") != "tool_use":
                continue
            arguments = block.get("input")
            if not isinstance(arguments, dict):
                arguments = {}
            name = str(block.get("name", ""))[:255] or "?"
            call = ToolCallRequest(
                call_id=str(block.get("id", "")),
                name=name,
                arguments_sha256=sha256_of(arguments),
                spec=self.specs.get(name),
            )
            text = json.dumps(arguments, sort_keys=True)
            if travels_by_reference(text):
                call.input_ref = await store.put_content(text, "application/json")
            else:
                call.input = arguments
            calls.append(call)
        return calls


async def tool_results_message(store: EventStore, results: list[ToolResult]) -> Message:
    """The user message that answers the model's tool calls, in the order it made them."""
    blocks: list[dict[str, Any]] = []
    for r in results:
        text = r.output if r.output_ref is None else await store.get_text(r.output_ref)
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": r.call_id,
            "content": text or f"({r.status})",
        }
        if r.is_error:
            block["is_error"] = True
        blocks.append(block)
    return Message(role="user", content=blocks)


__all__ = ["AgentLoop", "tool_results_message"]
