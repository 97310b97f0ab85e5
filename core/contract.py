"""The public Temporal contract: one input model and one output model per operation.

Client, workflows and activities import these same types, so a call type-checks on both
sides, and any Temporal SDK can drive a session with the JSON they describe::

    workflow AgentSession(SessionSpec) -> SessionSummary
      update activate/pause/resume/complete/fail(Transition) -> SessionView
      update submit_run(RunRequest) -> RunRef
      update cancel_run(CancelRun) -> RunRef      signal cancel_run(CancelRun)
      signal cancel(CancelSession)
      query  describe() -> SessionView
    workflow AgentRun(RunSpec) -> RunResult

Payloads stay small by design: tokens, transcripts and tool output live in the event store
and are read by reference (run id), never carried through workflow history. Prompts, system
prompts and replies over :data:`~core.content.INLINE_LIMIT` travel as a
:class:`~core.content.ContentRef` (``prompt_ref``, ``system_prompt_ref``, ``output_ref``):
the content is in the store, the payload holds its digest and size.
"""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from agent_session_manager.core.budget import TENANT_TAG_PREFIX, Budget
from agent_session_manager.core.capabilities import Capability, CapabilityType, Negotiation
from agent_session_manager.core.content import TEXT_MEDIA_TYPE, ContentRef
from agent_session_manager.core.errors import MAX_MESSAGE_BYTES, ValidationError
from agent_session_manager.core.status import RunStatus, SessionStatus
from agent_session_manager.core.tools import (
    MAX_TOOLS,
    MAX_TURNS_LIMIT,
    ApprovalPolicy,
    PendingApproval,
    ToolCallRequest,
    ToolName,
    ToolResult,
    ToolSpec,
    provider_attempt,
)
from agent_session_manager.core.usage import TokenUsage

#: What ``submit_run`` does when the session already runs its maximum of runs.
MultitaskStrategy = Literal["reject", "enqueue", "interrupt", "rollback"]
#: Every multitask strategy, in declaration order.
MULTITASK_STRATEGIES: tuple[MultitaskStrategy, ...] = ("reject", "enqueue", "interrupt", "rollback")


# --- the limits an input meets on its way ---------------------------------------------------
# Every field that ends up in a timer, a workflow id, a search attribute, a SQL column or a
# payload is bounded here, by the limit it would otherwise hit later, where it would fail a
# workflow task (retried forever), get the workflow terminated, or retry a write forever.

#: Ids key the store's ``varchar(255)`` columns; ``session-``/``run-`` plus 255 characters is
#: far inside Temporal's 1,000-character workflow-id limit.
MAX_ID_CHARS = 255
#: What ids are made of: they land in workflow ids, SQL keys, URLs and shell commands as is.
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]+")
#: ``agent_id``, ``provider``, ``model``: the store's ``varchar(255)`` columns (and the
#: keyword columns of Temporal's SQL visibility store).
MAX_NAME_CHARS = 255
#: Temporal's default per-value search-attribute limit (``limit.searchAttributeValueSize``);
#: over it the server *terminates* the workflow. A value is sent as ASCII-escaped JSON.
SEARCH_ATTRIBUTE_VALUE_BYTES = 2048
#: Room left in that limit for the payload's metadata (encoding and type).
_SEARCH_ATTRIBUTE_METADATA_BYTES = 64
#: How many tags a session may have (the ``AsmTags`` keyword list).
MAX_TAGS = 32
#: How long one tag may be.
MAX_TAG_CHARS = 64
#: Timers and timeouts: a year, far inside the range of Temporal's durations (Go's
#: ``time.Duration`` overflows at ~292 years; ``1e12`` or ``2**63`` seconds wedge a task).
MAX_TIMEOUT_SECONDS = 365 * 24 * 3600.0
#: Mock scripts sleep at most this long (milliseconds), for the same reason.
_MAX_MOCK_DELAY_MS = 24 * 3600 * 1000
#: Mock replies stay at most 100 M characters however the script repeats its text.
_MAX_MOCK_REPLY_CHARS = 100_000_000
#: A mock's reported token counts (a trillion; far above any real call's).
_MAX_MOCK_TOKENS = 2**40
#: Turns are counted in a 32-bit SQL column.
_MAX_TURN = 2**31 - 1
#: The store's ``stop_reason`` column is ``varchar(64)``.
_MAX_STOP_REASON_CHARS = 64
#: Free-text reasons recorded in events.
_MAX_REASON_CHARS = 4096
#: Temporal refuses a payload over 2 MB (``limit.blobSize.error``) and fails the task that
#: made it. A session spec and a run request each stay under this (as JSON), so the child's
#: input, which carries both, stays well under the limit.
MAX_INPUT_BYTES = 256 * 1024
#: The queue's requests together, as JSON: continue-as-new carries the queue in its input.
MAX_QUEUED_BYTES = 2 * MAX_INPUT_BYTES
#: A run's spec is a session spec's content plus a run request's.
_MAX_RUN_SPEC_BYTES = 2 * MAX_INPUT_BYTES + 64 * 1024
#: The most update payload a Temporal server serving us should admit at once for one workflow
#: (its ``history.maxInFlightUpdatePayloads``). A worker that rejects an update echoes the
#: request in its task completion, and a completion over gRPC's 4 MiB gets the workflow
#: *terminated*; the server's default (20 MiB) admits a 4 MiB update that does just that, and
#: at 3 MiB a task that rejected several large updates at once was still refused ("Rejection
#: exceeds size limit", seen under load). 1 MiB keeps every task's echoes under the 2 MB
#: payload limit and is still four of our largest requests (a run request is at most 256 KiB).
SERVER_UPDATE_PAYLOADS_BYTES = 1024 * 1024


def check_id(v: str) -> str:
    """``v`` if it can be a session or run id; else ``ValueError`` naming the limit it breaks."""
    if len(v) > MAX_ID_CHARS:
        raise ValueError(
            f"at most {MAX_ID_CHARS} characters (the store's id columns are varchar(255)), "
            f"got {len(v)}"
        )
    if not ID_PATTERN.fullmatch(v):
        raise ValueError(
            "only letters, digits, '_', '-', '.' and ':' (ids become workflow ids and SQL keys)"
        )
    return v


#: A tenant name: the ``AsmTenant`` search attribute, a store key, shown in URLs and logs. A
#: session carries it as its tag ``tenant:<name>`` (at most :data:`MAX_TAG_CHARS`), so a tenant
#: valid here fits its tag and every table (slot leases 64, keys 128, the ledger 255).
MAX_TENANT_CHARS = MAX_TAG_CHARS - len(TENANT_TAG_PREFIX)


def check_tenant(v: object) -> str:
    """``v`` if it can name a tenant (an id's characters, at most :data:`MAX_TENANT_CHARS`);
    else ``validation_error`` saying what a tenant name is made of."""
    if not isinstance(v, str) or not 0 < len(v) <= MAX_TENANT_CHARS or not ID_PATTERN.fullmatch(v):
        raise ValidationError(
            "validation_error",
            f"a tenant is 1-{MAX_TENANT_CHARS} letters, digits, '_', '-', '.' or ':'",
            details={"field": "tenant"},
        )
    return v


def session_tenant(tags: list[str], tenant: str | None) -> tuple[list[str], str | None]:
    """One tenant for a session, from ``tenant=`` and/or its ``tenant:<name>`` tag: the tags
    (with the tag added when only ``tenant=`` named it) and the tenant, checked once.

    The tag is what the worker reads (budgets, the ledger, ``asm usage --by tenant``), so a
    session started with ``tenant=X`` is X's everywhere. ``validation_error`` when the two
    name different tenants, when tags name several, or when the name is not a tenant's.
    """
    named = {tag[len(TENANT_TAG_PREFIX) :] for tag in tags if tag.startswith(TENANT_TAG_PREFIX)}
    if tenant is not None:
        named.add(tenant)
    if not named:
        return tags, None
    if len(named) > 1:
        raise ValidationError(
            "validation_error",
            "the session names more than one tenant (tenant= and tenant:<name> tags must "
            "agree): give the tenant once, tenant= adds the tag",
            details={"field": "tenant"},
        )
    (one,) = named
    one = check_tenant(one)
    if f"{TENANT_TAG_PREFIX}{one}" in tags:
        return tags, one
    with_tag = [*tags, f"{TENANT_TAG_PREFIX}{one}"]
    try:
        _tags(with_tag)
    except ValueError as exc:
        raise ValidationError(
            "validation_error",
            f"no room for the tenant's tag: {exc}",
            details={"field": "tags"},
        ) from None
    return with_tag, one


def _search_attribute_bytes(v: Any) -> int:
    return len(json.dumps(v, separators=(",", ":"))) + _SEARCH_ATTRIBUTE_METADATA_BYTES


def _name(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be blank")
    if len(v) > MAX_NAME_CHARS:
        raise ValueError(
            f"at most {MAX_NAME_CHARS} characters (the store's columns are varchar(255)), "
            f"got {len(v)}"
        )
    if _search_attribute_bytes(v) > SEARCH_ATTRIBUTE_VALUE_BYTES:
        raise ValueError(
            f"too large for a search attribute: Temporal's limit is "
            f"{SEARCH_ATTRIBUTE_VALUE_BYTES} bytes per value, as escaped JSON"
        )
    return v


def _tags(v: list[str]) -> list[str]:
    if len(v) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags, got {len(v)}")
    for tag in v:
        if not tag.strip() or len(tag) > MAX_TAG_CHARS:
            raise ValueError(f"each tag must be 1 to {MAX_TAG_CHARS} characters, got {tag[:80]!r}")
    if _search_attribute_bytes(v) > SEARCH_ATTRIBUTE_VALUE_BYTES:
        raise ValueError(
            f"tags are too large for the AsmTags search attribute: Temporal's limit is "
            f"{SEARCH_ATTRIBUTE_VALUE_BYTES} bytes per value, as escaped JSON"
        )
    return v


def _seconds(v: float) -> float:
    if not math.isfinite(v) or v <= 0 or v > MAX_TIMEOUT_SECONDS:
        raise ValueError(
            f"must be a finite number of seconds, > 0 and <= {MAX_TIMEOUT_SECONDS:.0f} "
            f"(a year: Temporal timers overflow beyond ~292 years), got {v!r}"
        )
    return v


def _size_check(model: BaseModel, limit: int, *, exclude: set[str] | None = None) -> None:
    size = len(model.model_dump_json(exclude=exclude).encode())
    if size > limit:
        raise ValueError(
            f"{type(model).__name__} is {size} bytes as JSON; the limit is {limit} bytes "
            f"(it travels in Temporal payloads, refused over 2 MB)"
        )


#: A session or run id (see :data:`MAX_ID_CHARS`, :data:`ID_PATTERN`).
Id = Annotated[str, AfterValidator(check_id)]
#: An agent, provider or model name: a store column and (agent, provider) a search attribute.
Name = Annotated[str, AfterValidator(_name)]
#: A session's tags: the ``AsmTags`` search attribute.
Tags = Annotated[list[str], AfterValidator(_tags)]
#: A duration in seconds that becomes a Temporal timer or timeout.
Seconds = Annotated[float, AfterValidator(_seconds)]
#: A free-text reason.
_Reason = Annotated[str, Field(max_length=_MAX_REASON_CHARS)]
#: A mock script delay, in milliseconds.
_DelayMs = Annotated[int, Field(ge=0, le=_MAX_MOCK_DELAY_MS)]


def session_workflow_id(session_id: str) -> str:
    """Workflow id of a session: ``session-<session_id>``."""
    return f"session-{session_id}"


def run_workflow_id(run_id: str) -> str:
    """Workflow id of a run: ``run-<run_id>``."""
    return f"run-{run_id}"


def session_id_from_workflow_id(workflow_id: str) -> str:
    """Inverse of :func:`session_workflow_id`; any other id is used as is."""
    return workflow_id.removeprefix("session-")


class _Model(BaseModel):
    # Unknown fields are an error: a typo in a JSON input must not be silently dropped.
    model_config = ConfigDict(extra="forbid")


#: Fields the agent loop added to the contract. Left out of a payload while they hold their
#: defaults, so a run without tools sends exactly what it sent before them, and a worker of
#: the previous release (which forbids unknown fields) still takes it during a rolling deploy.
_LOOP_FIELDS = frozenset(
    {
        # Not a loop field, but left out the same way: the default context policy.
        "context",
        # The summarize strategy's settings: a truncate policy's JSON stays what it was.
        "summary_max_chars",
        "summary_model",
        "summary",
        "tools",
        "client_tools",
        "tool_policies",
        "max_turns",
        "after_tools",
        "step",
        "prefix",
        "tool_results",
        "usage_before",
        "tool_calls",
        "messages",
        "waiting",
        "pending_approvals",
    }
)


@functools.cache
def _loop_defaults(cls: type[BaseModel]) -> dict[str, Any]:
    """``cls``'s loop fields and their defaults, computed once per class.

    Only ever compared with, never handed out (a factory's list is not copied). Asking
    pydantic each time was most of a payload's serialization: ``FieldInfo.get_default`` inspects
    the default factory's signature (parsing ``list``'s text signature) on every call, several
    times per model, on every payload a run sends or checks the size of.
    """
    return {
        name: field.get_default(call_default_factory=True)
        for name, field in cls.model_fields.items()
        if name in _LOOP_FIELDS
    }


class _LoopFieldsWhenUsed(_Model):
    @model_serializer(mode="wrap")
    def _without_unused_loop_fields(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        defaults = _loop_defaults(type(self))
        for name in defaults.keys() & data.keys():
            if getattr(self, name) == defaults[name]:
                del data[name]
        return data


class _Tools(_LoopFieldsWhenUsed):
    """The tool fields a session, a run request and a run's spec share.

    Shared through this base, their JSON does not change (a payload is a JSON object: the
    order its fields are written in means nothing to a reader), only where they are declared.
    """

    tools: list[ToolName] = Field(
        default_factory=list,
        max_length=MAX_TOOLS,
        description="names of tools registered on the worker the model may call "
        "(a run's are added to its session's)",
    )
    client_tools: list[ToolSpec] = Field(
        default_factory=list,
        max_length=MAX_TOOLS,
        description="tools the application runs itself (results through submit_tool_result)",
    )
    tool_policies: dict[ToolName, ApprovalPolicy] = Field(
        default_factory=dict, description="per-tool approval overrides: always | never | ask"
    )


class _ToolLoop(_Tools):
    """The tool fields with the loop's bound, as a session and a run's spec hold it."""

    max_turns: int = Field(
        default=10, ge=1, le=MAX_TURNS_LIMIT, description="model calls per run, at most"
    )


class Message(_Model):
    """One conversation message: text, or a list of provider content blocks."""

    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]

    @field_validator("content")
    @classmethod
    def _not_empty(cls, v: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        if not v:
            raise ValueError("message content must not be empty")
        return v

    def text(self) -> str:
        """The message's plain text (text blocks joined)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(b.get("text", "")) for b in self.content if b.get("type") == "text")


# --- the scripted mock provider ---------------------------------------------------------


class MockText(_Model):
    """Stream ``text`` (``repeat`` times over) in chunks of ``chunk_size`` characters,
    ``delay_ms`` apart."""

    type: Literal["text"] = "text"
    text: str
    chunk_size: int = Field(default=8, ge=1)
    delay_ms: _DelayMs = 0
    #: A long reply from a short script (the script itself rides in payloads).
    repeat: int = Field(default=1, ge=1, le=_MAX_MOCK_REPLY_CHARS)

    @model_validator(mode="after")
    def _bounded_reply(self) -> MockText:
        # The worker builds the whole text in memory: a hostile repeat must not exhaust it.
        if len(self.text) * self.repeat > _MAX_MOCK_REPLY_CHARS:
            raise ValueError(
                f"text times repeat is {len(self.text) * self.repeat} characters; "
                f"the mock replies at most {_MAX_MOCK_REPLY_CHARS}"
            )
        return self

    def full_text(self) -> str:
        """The text this step streams."""
        return self.text * self.repeat


class MockThinking(_Model):
    """Stream reasoning text (``message_streamed`` with ``kind: thinking``)."""

    type: Literal["thinking"] = "thinking"
    text: str
    chunk_size: int = Field(default=16, ge=1)


class MockToolCall(_Model):
    """A tool call: started, then completed with ``output`` (or failed when ``fail``)."""

    type: Literal["tool_call"] = "tool_call"
    name: str = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    fail: bool = False
    delay_ms: _DelayMs = 0


class MockToolUse(_Model):
    """A ``tool_use`` block the run's agent loop executes (the tool must be attached).

    The script's ``stop_reason`` should then be ``tool_use``; what the model says after the
    results is the next script in ``after_tools``.
    """

    type: Literal["tool_use"] = "tool_use"
    name: str = Field(min_length=1, max_length=64)
    input: dict[str, Any] = Field(default_factory=dict)


class MockError(_Model):
    """Raise a taxonomy error on the listed attempts (all attempts when ``attempts`` is empty)."""

    type: Literal["error"] = "error"
    code: str = Field(default="provider_unavailable", max_length=64)
    message: str = Field(default="scripted failure", max_length=_MAX_REASON_CHARS)
    retry_after: float | None = Field(default=None, ge=0, le=3600, allow_inf_nan=False)
    attempts: list[int] = Field(default_factory=list)


class MockSleep(_Model):
    """Go silent for ``ms`` milliseconds; longer than the silence limit is ``provider_timeout``."""

    type: Literal["sleep"] = "sleep"
    ms: _DelayMs
    attempts: list[int] = Field(default_factory=list, description="empty: every attempt")


#: One step of a mock script, told apart by its ``type``.
MockStep = Annotated[
    MockText | MockThinking | MockToolCall | MockToolUse | MockError | MockSleep,
    Field(discriminator="type"),
]


class MockScript(_LoopFieldsWhenUsed):
    """What the mock provider does for a run; usage is reported at the end."""

    steps: list[MockStep] = Field(default_factory=list)
    usage: TokenUsage | None = None
    stop_reason: str = Field(default="end_turn", min_length=1, max_length=_MAX_STOP_REASON_CHARS)
    #: The replies to the model calls that follow each round of tool results, in order.
    after_tools: list[MockScript] = Field(default_factory=list, max_length=MAX_TURNS_LIMIT)
    #: The reply to a summary request (context policy ``summarize``); None: the default reply.
    summary: MockScript | None = None

    def for_step(self, step: int) -> MockScript:
        """The script of model call ``step`` (1 = this one); past the end, the last one."""
        if step <= 1 or not self.after_tools:
            return self
        return self.after_tools[min(step - 2, len(self.after_tools) - 1)]

    @field_validator("usage")
    @classmethod
    def _usage_in_range(cls, usage: TokenUsage | None) -> TokenUsage | None:
        # A session's total (a 64-bit SQL column) must not overflow however many runs add up.
        if (
            usage is not None
            and max(
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_creation_input_tokens,
                usage.cache_read_input_tokens,
            )
            > _MAX_MOCK_TOKENS
        ):
            raise ValueError(f"each token count must be at most {_MAX_MOCK_TOKENS}")
        return usage


# --- retries and limits -----------------------------------------------------------------


class RetrySettings(_Model):
    """The provider activity's retry policy; non-retryable types come from the taxonomy."""

    max_attempts: int = Field(default=5, ge=1, le=100)
    initial_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    backoff_coefficient: float = Field(default=2.0, ge=1.0, le=10.0)
    maximum_interval_seconds: float = Field(default=60.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _interval_order(self) -> RetrySettings:
        if self.maximum_interval_seconds < self.initial_interval_seconds:
            raise ValueError("maximum_interval_seconds must be >= initial_interval_seconds")
        return self


# --- session ------------------------------------------------------------------------------


class ContextPolicy(_LoopFieldsWhenUsed):
    """What of the conversation a run sends its model when the session has outgrown it.

    ``truncate`` (the default): the newest whole turns that fit both limits; the oldest go
    first, a turn is never cut in half, and the system prompt (sent apart from the
    conversation) is always kept. The limits also bound what each run reads from the store,
    so a turn's read does not grow with the session (:func:`core.context.fit_context`).

    ``summarize``: the same window, led by a summary of the turns it no longer holds, written
    by the model (``summary_model``, default the run's) at most ``summary_max_chars`` long,
    stored and reused until the window drops more (:mod:`activities.summary`).
    """

    strategy: Literal["truncate", "summarize"] = "truncate"
    max_messages: int = Field(
        default=200, ge=2, le=100_000, description="earlier messages sent at most"
    )
    max_chars: int = Field(
        default=400_000,
        ge=1_000,
        le=50_000_000,
        description="earlier messages' characters sent at most (content blocks as JSON)",
    )
    summary_max_chars: int = Field(
        default=4_000,
        ge=200,
        le=200_000,
        description="summarize: the summary's characters at most (asked of the model, then cut)",
    )
    summary_model: Name | None = Field(
        default=None, description="summarize: the model that writes summaries (default: the run's)"
    )


class SessionSpec(_ToolLoop):
    """Input of ``AgentSession``: who the agent is, which provider, and the session's policies."""

    agent_id: Name = Field(description="the agent this session serves")
    session_id: Id | None = Field(
        default=None, description="defaults to the workflow id without its 'session-' prefix"
    )
    provider: Name = "mock"
    model: Name | None = None
    system_prompt: str | None = None
    system_prompt_ref: ContentRef | None = Field(
        default=None, description="a system prompt stored in the event store (over 4 KiB)"
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: Tags = Field(default_factory=list)
    provider_options: dict[str, Any] = Field(
        default_factory=dict, description="passed to the provider: max_tokens, temperature, …"
    )
    mock: MockScript | None = None
    activate: bool = Field(default=True, description="go active at once (else wait for activate)")
    retry: RetrySettings = Field(default_factory=RetrySettings)
    run_timeout_seconds: Seconds | None = 600.0
    heartbeat_timeout_seconds: Seconds = 30.0
    idle_timeout_seconds: Seconds | None = None
    max_concurrent_runs: int = Field(default=1, ge=1, le=100)
    max_queued_runs: int = Field(default=100, ge=0, le=10000)
    multitask_strategy: MultitaskStrategy = "reject"
    budget: Budget | None = Field(
        default=None,
        description="tokens and/or micro-dollars this session may spend in all; checked "
        "before every provider call (budget_exceeded)",
    )
    #: At most 500: every run of an execution rides in ``describe`` and the update results.
    continue_as_new_after_runs: int = Field(default=200, ge=1, le=500)
    #: The replay budget: a worker that lost the session from its cache (a restart, a deploy,
    #: more active sessions than its cache holds) replays the current execution's history
    #: before the next run, so the session continues-as-new once this execution's history
    #: has grown by this many events or bytes (whichever first; at least one run per
    #: execution). See docs/architecture.md, "Performance".
    continue_as_new_after_events: int = Field(default=500, ge=100, le=50_000)
    continue_as_new_after_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=40 * 1024 * 1024)
    context: ContextPolicy = Field(
        default_factory=ContextPolicy,
        description="how much of the earlier conversation each run sends its model",
    )
    carried: SessionState | None = Field(
        default=None, description="internal: state carried across continue-as-new"
    )

    @model_validator(mode="after")
    def _small(self) -> SessionSpec:
        if self.system_prompt is not None and self.system_prompt_ref is not None:
            raise ValueError("give system_prompt or system_prompt_ref, not both")
        _size_check(self, MAX_INPUT_BYTES, exclude={"carried"})
        return self


class Transition(_Model):
    """Argument of the session transition updates; ``reason`` is recorded in the event."""

    reason: _Reason | None = None
    error: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _small(self) -> Transition:
        _size_check(self, _MAX_REASON_CHARS * 4)
        return self


class CancelSession(_Model):
    """Argument of the ``cancel`` signal."""

    reason: _Reason | None = None


class AttemptFailed(_Model):
    """Argument of the ``attempt_failed`` signal: one failed attempt of a run, as its error."""

    attempt: int = Field(ge=1, le=2**31)
    code: str = Field(max_length=64)
    message: str = Field(max_length=4 * MAX_MESSAGE_BYTES)
    retryable: bool


class AttemptStarted(_Model):
    """Argument of the ``attempt_started`` signal: a retried provider attempt of a run starts.

    A lifecycle fact of reference size, no content. ``token`` is the run's own (as in
    ``run_finished``): anyone else's is dropped.
    """

    token: str | None = Field(default=None, max_length=64)
    activity_id: str = Field(max_length=255)
    attempt: int = Field(ge=1, le=1_000_000)

    def order(self) -> tuple[int, int]:
        """This attempt in the run's order of provider attempts (as a CLI approval's
        ``asked_by``)."""
        return provider_attempt(self.activity_id, self.attempt)


class CancelRequest(_Model):
    """Input of the ``request_cancel`` local activity: cancel this execution, saying why."""

    workflow_id: str
    run_id: str
    reason: str


# --- runs --------------------------------------------------------------------------------


class RunRequest(_Tools):
    """Argument of ``submit_run``: the new messages and per-run overrides."""

    run_id: Id | None = Field(default=None, description="idempotency key; generated if absent")
    prompt: str | None = None
    prompt_ref: ContentRef | None = Field(
        default=None, description="a prompt stored in the event store (over 4 KiB)"
    )
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
    #: Optional here: a run's own bound replaces its session's only when given.
    max_turns: int | None = Field(
        default=None, ge=1, le=MAX_TURNS_LIMIT, description="model calls per run, at most"
    )

    @model_validator(mode="after")
    def _has_input(self) -> RunRequest:
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("prompt must not be blank")
        if self.prompt is not None and self.prompt_ref is not None:
            raise ValueError("give prompt or prompt_ref, not both")
        if self.prompt is None and self.prompt_ref is None and not self.messages:
            raise ValueError("a run needs a prompt or at least one message")
        _size_check(self, MAX_INPUT_BYTES)
        return self

    def input_messages(self) -> list[Message]:
        """The run's new inline messages: ``messages`` then ``prompt`` as a user message
        (a ``prompt_ref`` is appended by the provider activity, which reads it)."""
        msgs = list(self.messages)
        if self.prompt is not None:
            msgs.append(Message(role="user", content=self.prompt))
        return msgs

    def preview(self, chars: int = 80) -> str:
        """The start of the run's last input, for summaries in the Temporal UI."""
        if self.prompt_ref is not None:
            return f"(prompt of {self.prompt_ref.size} bytes, by reference)"
        msgs = self.input_messages()
        return msgs[-1].text()[:chars] if msgs else ""


class RunRef(_Model):
    """What ``submit_run`` and ``cancel_run`` return: where to find the run."""

    run_id: str
    session_id: str
    workflow_id: str
    status: RunStatus
    turn: int
    negotiation: Negotiation | None = None
    note: str | None = None


class CancelRun(_Model):
    """Argument of ``cancel_run``."""

    run_id: Id
    reason: _Reason | None = None


class RunSpec(_ToolLoop):
    """Input of ``AgentRun``: everything the run needs, small (history is read from SQL)."""

    run_id: Id
    session_id: Id
    agent_id: Name
    provider: Name
    model: Name | None = None
    turn: int = Field(ge=1, le=_MAX_TURN)
    system_prompt: str | None = None
    system_prompt_ref: ContentRef | None = None
    messages: list[Message]
    prompt_ref: ContentRef | None = Field(
        default=None, description="the last user message, stored: appended after ``messages``"
    )
    provider_options: dict[str, Any] = Field(default_factory=dict)
    mock: MockScript | None = None
    retry: RetrySettings = Field(default_factory=RetrySettings)
    timeout_seconds: Seconds | None = None
    heartbeat_timeout_seconds: Seconds = 30.0
    negotiation: Negotiation | None = None
    token: str | None = Field(
        default=None,
        max_length=64,
        description="evidence: the session settles this run only on a run_finished that has it",
    )
    budget: Budget | None = Field(default=None, description="the session's own budget")
    tenant: Name | None = Field(default=None, description="the session's tenant:<name> tag")
    context: ContextPolicy | None = Field(
        default=None, description="the session's context policy (None: the default policy)"
    )

    @model_validator(mode="after")
    def _small(self) -> RunSpec:
        _size_check(self, _MAX_RUN_SPEC_BYTES)
        return self


class RunResult(_Model):
    """Result of ``AgentRun``: the assistant text inline, or ``output_ref`` when it is over
    :data:`~core.content.INLINE_LIMIT` (``SessionClient`` reads it back into ``output``)."""

    run_id: str
    session_id: str
    status: RunStatus
    output: str = ""
    output_ref: ContentRef | None = None
    #: Only in results recorded before long replies went by reference (cut at 16 KiB then).
    output_truncated: bool = False
    stop_reason: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    attempts: int = 0
    error: dict[str, Any] | None = None
    cost_micros: int = Field(
        default=0, ge=0, description="every attempt of the run at the price table (1e-6 USD)"
    )
    billed_usage: TokenUsage | None = Field(
        default=None, description="tokens of every attempt (failed ones too), from the ledger"
    )


class RunFinished(RunResult):
    """Argument of the ``run_finished`` signal: the run's result and its spec's ``token``.

    The token is the evidence that the run itself sent it: a ``run_finished`` without it is
    recorded and ignored, and the run settles when its workflow ends instead.
    """

    token: str | None = Field(default=None, max_length=64)

    @classmethod
    def of(cls, result: RunResult, token: str | None) -> RunFinished:
        """``result`` as the run that holds ``token`` signals it."""
        return cls.model_validate({**result.model_dump(), "token": token})


# --- activities --------------------------------------------------------------------------


class ProviderInfo(_Model):
    """A provider as the worker knows it: name, capabilities, default model."""

    name: str
    capabilities: list[Capability]
    default_model: str | None = None


class ProviderCatalog(_Model):
    """Every provider the worker can run."""

    providers: dict[str, ProviderInfo]


class ProviderCall(_LoopFieldsWhenUsed):
    """Input of the provider activity: the run spec (small) plus where the agent loop is.

    Model call ``step`` (1 = the run's first) continues the run's saved transcript, cut to its
    first ``prefix`` messages (what the previous call saved: a retried call never sees its own
    earlier save), with ``tool_results`` as the next user message.
    """

    spec: RunSpec
    step: int = Field(default=1, ge=1, le=MAX_TURNS_LIMIT)
    prefix: int = Field(default=0, ge=0)
    tool_results: list[ToolResult] = Field(default_factory=list)
    #: The earlier model calls' usage: the last call reports the run's total.
    usage_before: TokenUsage = Field(default_factory=TokenUsage)


class StoreContent(_Model):
    """Input of the ``store_content`` local activity: content a caller sent inline.

    Local activity inputs stay in the worker (history records only the result, the
    reference), which is what lets a session take megabytes out of its payloads.
    """

    content: str
    media_type: str = Field(default=TEXT_MEDIA_TYPE, min_length=1, max_length=255)


class ProviderOutcome(_LoopFieldsWhenUsed):
    """What the provider activity returns: the text inline, or by reference when long."""

    output: str = ""
    output_ref: ContentRef | None = None
    output_truncated: bool = False
    stop_reason: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    attempt: int = 1
    cost_micros: int = Field(default=0, ge=0, description="every attempt of the run so far")
    billed_usage: TokenUsage | None = None
    #: ``stop_reason == "tool_use"``: the calls the loop makes before the next model call.
    tool_calls: list[ToolCallRequest] = Field(default_factory=list)
    #: How many messages of the run are saved now (the next call's ``prefix``).
    messages: int = 0


class _Patch(_Model):
    """A read-model change: only the fields set when it was built apply.

    Unset fields are left out of its JSON too, so the set of fields survives the trip through
    Temporal (a dumped default would otherwise arrive as a field to apply).
    """

    @model_serializer(mode="wrap")
    def _only_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if k in self.model_fields_set}


class SessionPatch(_Patch):
    """Session read-model fields a lifecycle record sets (its status is ``session_status``)."""

    agent_id: str = ""
    provider: str = ""
    model: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    run_count: int = 0
    error: dict[str, Any] | None = None


class RunPatch(_Patch):
    """Run read-model fields a lifecycle record sets (its status is ``run_status``)."""

    session_id: str = ""
    turn: int = 0
    input_text: str | None = None
    input_messages: list[Message] = Field(default_factory=list)
    output: str | None = None
    stop_reason: str | None = None
    model: str | None = None
    provider: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    error: dict[str, Any] | None = None
    attempts: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    rolled_back: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @field_validator("started_at", "ended_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        # A naive timestamp is UTC by construction (workflow time, SQLite).
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v


class LifecycleRecord(_Model):
    """Input of the ``record_lifecycle`` local activity: one event and the read-model change."""

    event_id: str
    session_id: str
    run_id: str | None = None
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    provider: str | None = None
    session_status: SessionStatus | None = None
    run_status: RunStatus | None = None
    session_row: SessionPatch | None = Field(
        default=None, description="session read-model fields to set (agent_id, tags, …)"
    )
    run_row: RunPatch | None = Field(
        default=None, description="run read-model fields to set (turn, input, usage, …)"
    )


# --- views -------------------------------------------------------------------------------


class RunView(_LoopFieldsWhenUsed):
    """A run as the session sees it."""

    run_id: str
    turn: int
    status: RunStatus
    usage: TokenUsage = Field(default_factory=TokenUsage)
    error: dict[str, Any] | None = None
    stop_reason: str | None = None
    cost_micros: int = 0
    #: What the run's agent loop waits for: ``awaiting_approval``, ``awaiting_tool_result``.
    waiting: str | None = None
    pending_approvals: list[PendingApproval] = Field(default_factory=list)


class RunWaiting(_Model):
    """Argument of the ``run_waiting`` signal: what a run's agent loop now waits for.

    Sent by the run itself (it carries the run's ``token``, like ``run_finished``), so the
    session's ``describe`` lists pending approvals without asking each run.
    """

    run_id: Id
    token: str | None = Field(default=None, max_length=64)
    waiting: Literal["awaiting_approval", "awaiting_tool_result"] | None = None
    pending_approvals: list[PendingApproval] = Field(default_factory=list, max_length=MAX_TOOLS)


class SessionState(_Model):
    """The session workflow's whole state: what ``describe`` shows and continue-as-new carries."""

    session_id: str
    agent_id: str
    provider: str
    status: SessionStatus = SessionStatus.PENDING
    runs: list[RunView] = Field(default_factory=list)
    queue: list[RunRequest] = Field(default_factory=list)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_micros: int = Field(default=0, description="what the session's settled runs cost")
    run_count: int = 0
    event_counter: int = 0
    capabilities: list[Capability] = Field(default_factory=list)
    default_model: str | None = Field(default=None, description="the provider's default model")
    continued: int = Field(default=0, description="how many times the session continued-as-new")
    error: dict[str, Any] | None = None
    outcomes: dict[RunStatus, int] = Field(
        default_factory=dict, description="runs ended so far, by status (kept across continues)"
    )


class SessionView(_Model):
    """Result of the ``describe`` query and of the transition updates."""

    session_id: str
    agent_id: str
    provider: str
    status: SessionStatus
    runs: list[RunView]
    queued: list[str]
    usage: TokenUsage
    run_count: int
    cost_micros: int = 0
    continued: int = 0
    error: dict[str, Any] | None = None
    ready: bool = Field(default=True, description="false until the session finished starting")
    outcomes: dict[RunStatus, int] = Field(
        default_factory=dict,
        description="runs ended, by status: completed, failed, cancelled, timeout",
    )


class SessionSummary(SessionView):
    """Result of the ``AgentSession`` workflow when it ends."""


SessionSpec.model_rebuild()
MockScript.model_rebuild()


def invalid(message: str, **details: Any) -> ValidationError:
    """A ``validation_error`` with a human message: the shorthand validators use."""
    return ValidationError("validation_error", message, details=details)
