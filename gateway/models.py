"""What the HTTP API takes and returns, beyond the contract's own models (``SessionView``,
``RunRef``, ``RunResult``, ``Event``, which it returns as they are).

Request bodies are the contract's fields a caller may choose, with the contract's own bounds
(``Name``, ``Tags``, ``Seconds`` …); unknown fields are an error. Ids are drawn by the gateway,
never by the caller: an id chosen by one tenant that collided with another's would tell it that
the other exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_session_manager.core.capabilities import CapabilityType
from agent_session_manager.core.content import Digest
from agent_session_manager.core.contract import (
    Message,
    MockScript,
    MultitaskStrategy,
    Name,
    RetrySettings,
    RunResult,
    RunView,
    Seconds,
    Tags,
)
from agent_session_manager.core.events import Event
from agent_session_manager.core.tools import (
    MAX_REASON_CHARS,
    MAX_SUBMITTED_RESULT_BYTES,
    MAX_TOOLS,
    MAX_TURNS_LIMIT,
    ApprovalPolicy,
    CallId,
    PendingApproval,
    ToolName,
    ToolSpec,
)

_Reason = Field(default=None, max_length=4096)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSession(_Body):
    """``POST /v1/sessions``: what ``SessionClient.start_session`` takes, minus the id."""

    agent_id: Name
    provider: Name = "mock"
    model: Name | None = None
    system_prompt: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: Tags = Field(default_factory=list)
    provider_options: dict[str, Any] = Field(default_factory=dict)
    mock: MockScript | None = None
    activate: bool = True
    retry: RetrySettings | None = None
    run_timeout_seconds: Seconds | None = 600.0
    idle_timeout_seconds: Seconds | None = None
    max_concurrent_runs: int = Field(default=1, ge=1, le=100)
    max_queued_runs: int = Field(default=100, ge=0, le=10000)
    multitask_strategy: MultitaskStrategy = "reject"
    tools: list[ToolName] = Field(default_factory=list, max_length=MAX_TOOLS)
    client_tools: list[ToolSpec] = Field(default_factory=list, max_length=MAX_TOOLS)
    tool_policies: dict[ToolName, ApprovalPolicy] = Field(default_factory=dict)
    max_turns: int = Field(default=10, ge=1, le=MAX_TURNS_LIMIT)


class SubmitRun(_Body):
    """``POST /v1/sessions/{id}/runs``: a ``RunRequest`` minus the run id."""

    prompt: str | None = None
    messages: list[Message] = Field(default_factory=list)
    model: Name | None = None
    timeout_seconds: Seconds | None = None
    retry: RetrySettings | None = None
    required_capabilities: list[CapabilityType] = Field(default_factory=list)
    optional_capabilities: list[CapabilityType] = Field(default_factory=list)
    strategy: MultitaskStrategy | None = None
    provider_options: dict[str, Any] = Field(default_factory=dict)
    mock: MockScript | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Reason(_Body):
    """An optional reason, recorded in the lifecycle event."""

    reason: str | None = _Reason


class Decision(_Body):
    """``POST …/runs/{run_id}/approve`` and ``…/deny``: the digest of the action decided on
    (from ``tool_approval_requested`` or ``GET …/approvals``); ``call_id`` makes a digest
    for other arguments ``approval_mismatch`` rather than ``approval_not_found``."""

    digest: Digest
    call_id: CallId | None = None
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)


class SubmitToolResult(_Body):
    """``POST …/runs/{run_id}/tool-results``: a client-side tool call's result."""

    call_id: CallId
    output: str = Field(default="", max_length=MAX_SUBMITTED_RESULT_BYTES)
    is_error: bool = False


class ApprovalList(BaseModel):
    """Approvals waiting for a human, each with the digest to approve or deny."""

    approvals: list[PendingApproval]


class SessionItem(BaseModel):
    """One row of the session list (Temporal visibility)."""

    session_id: str
    agent_id: str | None
    provider: str | None
    status: str | None
    total_tokens: int
    workflow_status: str
    started_at: datetime | None


class SessionList(BaseModel):
    sessions: list[SessionItem]


class RunList(BaseModel):
    """The session's runs (oldest first) and the ids of runs queued behind them."""

    runs: list[RunView]
    queued: list[str]


class RunWait(BaseModel):
    """``done`` with the result when the run ended within the wait; else its status now."""

    done: bool
    result: RunResult | None = None
    run: RunView | None = None


class EventPage(BaseModel):
    """A page of events; pass ``last_seq`` as ``after`` for the next one."""

    events: list[Event]
    last_seq: int = Field(description="the cursor after this page")
    more: bool = Field(description="a full page: more may follow at once")


class Whoami(BaseModel):
    key_id: str
    tenant: str


class Login(_Body):
    """The web view trades a key for an HttpOnly cookie (the key is never in a URL)."""

    key: str = Field(min_length=1, max_length=256)


class Health(BaseModel):
    status: Literal["ok"]
