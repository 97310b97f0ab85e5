"""Tools, as the workflows see them: pure descriptions, approval policies and action digests.

A tool is *described* here (:class:`ToolSpec`: name, JSON schema, approval policy, who runs it,
timeouts) and *executed* in :mod:`activities.tools` (a Python function behind the
``execute_tool`` activity) or by the application (``executor="client"``: the run waits for
the result through the ``submit_tool_result`` update).

Approvals are decided by one pure function (:func:`effective_policy`) and bound to exactly
one action by a digest (:func:`action_digest`): the tool, the sha256 of its canonical
arguments, the policy version and the expiry. An ``approve`` that names another digest (other
arguments, another policy) is rejected, so an approval never applies to something else than
what the human saw.

Pure code, no I/O: client, workflow and activities compute the same digests.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from agent_session_manager.core.content import ContentRef, Digest

#: Who decides whether a call runs: ``always`` runs it, ``never`` refuses it, ``ask`` waits
#: for a human (``approve`` / ``deny``).
ApprovalPolicy = Literal["always", "never", "ask"]
#: Who runs a tool: the worker (an activity) or the application (``submit_tool_result``).
ToolExecutor = Literal["worker", "client"]
#: How one tool call ended, as the model is told and ``describe_run`` shows.
ToolCallStatus = Literal["completed", "failed", "denied", "cancelled", "expired"]

#: Anthropic's (and OpenAI's) rule for tool names; it also keeps them safe in ids and logs.
TOOL_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: How many tools one run may offer the model (every schema rides in the run's spec).
MAX_TOOLS = 64
#: A tool's JSON schema, as JSON (it travels in the run spec and every model request).
MAX_SCHEMA_BYTES = 16 * 1024
#: A tool's description.
MAX_DESCRIPTION_CHARS = 4096
#: Model calls one run makes at most (each a billed provider call and an activity).
MAX_TURNS_LIMIT = 100
#: Tool call ids come from the model (``toolu_…``) or the mock; bounded like our ids.
MAX_CALL_ID_CHARS = 255
#: A result the application submits inline (larger ones belong in the store first).
MAX_SUBMITTED_RESULT_BYTES = 256 * 1024
#: Free-text reasons on approvals.
MAX_REASON_CHARS = 4096


def _tool_name(v: str) -> str:
    if not TOOL_NAME_PATTERN.fullmatch(v):
        raise ValueError(
            "a tool name is 1 to 64 letters, digits, '_' or '-' (the providers' rule), "
            f"got {v[:80]!r}"
        )
    return v


#: A tool's name (see :data:`TOOL_NAME_PATTERN`).
ToolName = Annotated[str, AfterValidator(_tool_name)]
#: A tool call id, as the model produced it.
CallId = Annotated[str, Field(min_length=1, max_length=MAX_CALL_ID_CHARS)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON (sorted keys, no spaces, UTF-8): what digests hash."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def sha256_of(value: Any) -> str:
    """``sha256:<hex>`` of ``value``'s canonical JSON."""
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()


class ToolSpec(_Model):
    """What a tool is: its name and schema (sent to the model) and how the run treats it."""

    name: ToolName
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    approval: ApprovalPolicy = "always"
    executor: ToolExecutor = "worker"
    #: Per attempt of the ``execute_tool`` activity.
    timeout_seconds: float = Field(default=60.0, gt=0, le=24 * 3600, allow_inf_nan=False)
    #: The activity must heartbeat this often (the tool helper does it for the function);
    #: it is also how fast a cancel reaches a running tool.
    heartbeat_timeout_seconds: float = Field(default=10.0, gt=0, le=3600, allow_inf_nan=False)
    max_attempts: int = Field(default=3, ge=1, le=100)
    #: ``ask``: how long an approval may stay pending before it resolves as denied.
    approval_timeout_seconds: float | None = Field(
        default=None, gt=0, le=365 * 24 * 3600, allow_inf_nan=False
    )
    #: Bumped by the tool's author when its meaning changes: outstanding approvals lapse.
    version: str = Field(default="1", min_length=1, max_length=64)

    @model_validator(mode="after")
    def _bounded(self) -> ToolSpec:
        if len(canonical_json(self.input_schema)) > MAX_SCHEMA_BYTES:
            raise ValueError(f"tool {self.name!r}: input_schema over {MAX_SCHEMA_BYTES} bytes")
        if self.input_schema.get("type", "object") != "object":
            raise ValueError(f"tool {self.name!r}: input_schema must describe an object")
        return self

    def for_model(self) -> dict[str, Any]:
        """The tool as a model request lists it (Anthropic's shape)."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }


def effective_policy(spec: ToolSpec, overrides: dict[str, ApprovalPolicy]) -> ApprovalPolicy:
    """The policy a call of ``spec`` meets: the run's or session's override, else the tool's.

    Overrides are the operator's word and win either way; the policy in force is part of the
    policy version, so changing it lapses outstanding approvals.
    """
    return overrides.get(spec.name, spec.approval)


def policy_version(spec: ToolSpec, policy: ApprovalPolicy) -> str:
    """A short fingerprint of what the approval is about: the tool's definition and policy.

    A changed schema, description, version or policy changes it, and with it every digest.
    """
    return sha256_of({"tool": spec.model_dump(mode="json"), "policy": policy})[7:23]


def action_digest(
    *,
    call_id: str,
    tool: str,
    arguments_sha256: str,
    policy_version: str,
    expires_at: str | None,
) -> str:
    """The digest an ``approve`` / ``deny`` must name: one call, its arguments, its policy."""
    return sha256_of(
        {
            "call_id": call_id,
            "tool": tool,
            "arguments_sha256": arguments_sha256,
            "policy_version": policy_version,
            "expires_at": expires_at,
        }
    )


class ToolCallRequest(_Model):
    """A ``tool_use`` block of the model's reply, as the run's loop handles it.

    Arguments travel inline when small, else by reference (``input_ref``); their hash is
    computed where the arguments are (the provider activity) and bound into the digest.
    """

    call_id: CallId
    name: str = Field(min_length=1, max_length=255)
    input: dict[str, Any] | None = None
    input_ref: ContentRef | None = None
    arguments_sha256: Digest
    #: The tool as the worker knows it; ``None`` when the model named a tool it was not given.
    spec: ToolSpec | None = None


class ToolResult(_Model):
    """How one tool call ended: what the next model call is told (text, or by reference)."""

    call_id: CallId
    name: str = Field(min_length=1, max_length=255)
    status: ToolCallStatus
    output: str = ""
    output_ref: ContentRef | None = None
    attempt: int = Field(default=0, ge=0)

    @property
    def is_error(self) -> bool:
        """Anything but ``completed`` is reported to the model as an error result."""
        return self.status != "completed"


class ToolInvocation(_Model):
    """Input of the ``execute_tool`` activity: one call of one tool of one run."""

    session_id: str
    run_id: str
    provider: str
    call: ToolCallRequest


class PendingApproval(_Model):
    """An ``ask`` waiting for a human: what ``describe_run`` and ``asm approvals ls`` show."""

    run_id: str
    session_id: str
    call_id: CallId
    tool: str
    arguments_sha256: Digest
    policy_version: str
    expires_at: str | None = None
    digest: Digest
    input: dict[str, Any] | None = None
    input_ref: ContentRef | None = None


class CliApprovalRequest(_Model):
    """Argument of the run's ``cli_approval_requested`` signal, sent by its provider activity.

    ``token`` is the run's own (as in ``run_finished``): anyone else's request is dropped.
    """

    token: str | None = Field(default=None, max_length=64)
    approval: PendingApproval
    #: The provider activity and attempt that ask: a later one's request supersedes what
    #: earlier ones still wait for (their CLI is gone). ``None``: sent by an older release.
    activity_id: str | None = Field(default=None, max_length=255)
    attempt: int | None = Field(default=None, ge=1, le=1_000_000)

    def asked_by(self) -> tuple[int, int]:
        """Which provider call asked, in the run's order (:func:`provider_attempt`)."""
        return provider_attempt(self.activity_id, self.attempt)


def provider_attempt(activity_id: str | None, attempt: int | None) -> tuple[int, int]:
    """A provider attempt in its run's order: the activity's sequence number (the run's
    activities get increasing numeric ids), then the attempt; ``0`` for what is not known."""
    seq = activity_id or ""
    numeric = seq.isascii() and seq.isdigit() and len(seq) < 10
    return (int(seq) if numeric else 0, attempt or 0)


class PendingToolCall(_Model):
    """A client-side tool call waiting for the application's ``submit_tool_result``."""

    call_id: CallId
    tool: str
    input: dict[str, Any] | None = None
    input_ref: ContentRef | None = None


class ApprovalDecision(_Model):
    """Argument of the ``approve`` / ``deny`` updates: the digest of the action decided on.

    ``call_id`` is optional; given, a digest that is not that call's current digest (other
    arguments, another policy) is rejected with ``approval_mismatch``.
    """

    digest: Digest
    call_id: CallId | None = None
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)
    by: str | None = Field(default=None, max_length=255, description="who decided (audit)")


class ApprovalResolution(_Model):
    """Result of ``approve`` / ``deny``: which call, and how it was resolved."""

    run_id: str
    call_id: str
    digest: str
    decision: Literal["granted", "denied"]
    reason: str | None = None


class ToolResultSubmission(_Model):
    """Argument of ``submit_tool_result``: the application's result of a client-side tool."""

    call_id: CallId
    output: str = Field(default="", max_length=MAX_SUBMITTED_RESULT_BYTES)
    is_error: bool = False


class RunProgress(_Model):
    """Result of the run's ``describe_run`` query: where the loop is, and what it waits for."""

    run_id: str
    session_id: str
    status: str
    phase: Literal["model", "tools", "awaiting_approval", "awaiting_tool_result", "ended"] = "model"
    model_calls: int = 0
    pending_approvals: list[PendingApproval] = Field(default_factory=list)
    pending_tool_calls: list[PendingToolCall] = Field(default_factory=list)
    tool_results: list[ToolResult] = Field(default_factory=list)
    #: Approvals an agent CLI asked for that are decided: the provider activity polls here.
    resolved_approvals: list[ApprovalResolution] = Field(default_factory=list)


__all__ = [
    "MAX_CALL_ID_CHARS",
    "MAX_SCHEMA_BYTES",
    "MAX_TOOLS",
    "MAX_TURNS_LIMIT",
    "TOOL_NAME_PATTERN",
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalResolution",
    "CallId",
    "CliApprovalRequest",
    "PendingApproval",
    "PendingToolCall",
    "RunProgress",
    "ToolCallRequest",
    "ToolCallStatus",
    "ToolExecutor",
    "ToolInvocation",
    "ToolName",
    "ToolResult",
    "ToolResultSubmission",
    "ToolSpec",
    "action_digest",
    "canonical_json",
    "effective_policy",
    "policy_version",
    "provider_attempt",
    "sha256_of",
]
