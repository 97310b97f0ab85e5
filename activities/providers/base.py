"""The provider protocol: what the activity hands a provider, and what it gets back.

A provider turns one run attempt into normalized events and a :class:`ProviderResult`:

* it reads nothing and writes nothing itself: the activity hands it the conversation in a
  :class:`ProviderRequest` and an :class:`EventSink` to emit into (the sink batches writes to
  the event store and heartbeats);
* it raises :class:`core.errors.AsmError` with a taxonomy code for every failure, translated
  from its SDK's exceptions at the adapter (``raise error(...) from exc``);
* cancellation arrives as ``asyncio.CancelledError`` at its current ``await`` (the activity
  learns of it through its heartbeat): it must stop the provider promptly — close the HTTP
  stream, kill the subprocess — and let the ``CancelledError`` propagate. It must never block
  the event loop.

How providers are found is :mod:`activities.providers` (the package), not this module: the
protocol imports no implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agent_session_manager.core.capabilities import Capability
from agent_session_manager.core.contract import Message, MockScript, ProviderInfo
from agent_session_manager.core.errors import ProviderError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.tools import ApprovalPolicy
from agent_session_manager.core.usage import TokenUsage


class ApprovalGate(Protocol):
    """Decides an agent CLI's approval request (:mod:`activities.cli_approvals`)."""

    async def decide(
        self,
        *,
        call_id: str,
        tool: str,
        arguments: dict[str, Any],
        default: ApprovalPolicy,
        timeout_seconds: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[bool, str | None]:
        """Whether the CLI may go on, and the reason; emits the approval events."""
        ...


@dataclass(frozen=True)
class ProviderRequest:
    """One attempt of one run, as a provider sees it."""

    session_id: str
    run_id: str
    attempt: int
    turn: int
    model: str | None
    system_prompt: str | None
    history: list[Message]
    """Earlier completed runs' messages, oldest first."""
    messages: list[Message]
    """This run's new messages."""
    options: dict[str, Any] = field(default_factory=dict)
    mock: MockScript | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    """Credentials from the worker's environment; never logged, never in events."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    """Tools the model may call (name, description, input_schema); ``[]``: none."""
    step: int = 1
    """Which model call of the run's agent loop this is (1 = the first)."""
    approvals: ApprovalGate | None = field(default=None, repr=False)
    """Where an agent CLI's approval requests go (policy, or a human through the run);
    ``None`` outside a run (a provider called directly): ``ask`` then denies."""


@dataclass
class ProviderResult:
    """What a finished attempt produced; the activity stores the assistant message."""

    text: str
    content: list[dict[str, Any]] = field(default_factory=list)
    """Assistant content blocks (text, tool_use, …) for the conversation; ``[]`` = text only."""
    stop_reason: str | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    model: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class EventSink(Protocol):
    """Where a provider emits normalized events (batched, heartbeated, idempotent)."""

    async def emit(self, type: EventType, data: dict[str, Any] | None = None) -> None:
        """Queue one event; ``message_streamed`` deltas coalesce within the flush window."""
        ...

    async def flush(self) -> None:
        """Write everything queued now (one transaction, one heartbeat)."""
        ...


@runtime_checkable
class Provider(Protocol):
    """A model provider adapter."""

    name: str
    default_model: str | None

    def capabilities(self) -> list[Capability]:
        """What this provider can do; runs negotiate against it."""
        ...

    async def stream(self, request: ProviderRequest, sink: EventSink) -> ProviderResult:
        """Run one attempt, emitting events into ``sink``; raise ``AsmError`` on failure."""
        ...


def info(provider: Provider) -> ProviderInfo:
    """The catalog entry a workflow negotiates against."""
    return ProviderInfo(
        name=provider.name,
        capabilities=provider.capabilities(),
        default_model=provider.default_model,
    )


def unavailable(name: str, install_hint: str) -> ProviderError:
    """``provider_unavailable`` telling the user what to install."""
    return ProviderError(
        "provider_unavailable",
        f"provider {name!r} is not installed on this worker; run: {install_hint}",
        details={"provider": name, "fix": install_hint},
        retryable=False,
    )
