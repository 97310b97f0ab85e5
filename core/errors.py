"""The error taxonomy: every failure the system reports has a code, a category and a retry bit.

Hierarchy::

    AsmError(code, category, message, details, retryable, provider_error)
    ├── ValidationError      validation   bad input: fix the request
    ├── StateError           state        the operation does not fit the current state
    ├── ResourceError        resource     something named does not exist, or already does
    ├── ProviderError        provider     the model provider failed or refused
    ├── StorageError         storage      the event store failed
    ├── RuntimeFailure       runtime      timeouts, cancellation, internal faults
    ├── ConcurrencyError     concurrency  limits and unsupported operations
    └── ToolError            tool         a tool call failed

Retryable codes are exactly :data:`RETRYABLE_CODES`; in Temporal an ``AsmError`` travels as an
``ApplicationError`` whose ``type`` is the code (see :mod:`core.temporal`), so retry policies
and clients on any SDK can branch on it.

Stricter than the seed: ``AsmError(code)`` always yields the subclass of the code's category
(so ``except StateError`` cannot miss one), a subclass refuses a code of another category,
and an error is small and clean from construction on: message, details and provider error
are redacted and capped (:mod:`core.scrub`; :data:`MAX_MESSAGE_BYTES`,
:data:`MAX_DETAILS_BYTES`, :data:`MAX_ERROR_BODY_BYTES`), credential headers are dropped. An
error travels in Temporal failures, events, spans and logs: a provider's multi-megabyte error
page would otherwise push a failure over the gRPC limit, and an echoed API key into history.

Programmer misuse (calling an API wrongly from Python) raises ordinary ``TypeError`` /
``ValueError``: those are bugs to fix, not outcomes to report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from agent_session_manager.core.scrub import redact, scrub, scrub_value

Category = Literal[
    "validation", "state", "resource", "provider", "storage", "runtime", "concurrency", "tool"
]
"""The eight error categories; each has its own :class:`AsmError` subclass."""

ErrorCode = Literal[
    "validation_error",
    "invalid_input",
    "missing_required_field",
    "invalid_format",
    "invalid_status",
    "invalid_transition",
    "invalid_event_type",
    "invalid_capability_type",
    "missing_required_capability",
    "stream_closed",
    "context_mismatch",
    "invalid_cursor",
    "session_mismatch",
    "run_mismatch",
    "not_found",
    "session_not_found",
    "run_not_found",
    "capability_not_found",
    "already_exists",
    "duplicate_capability",
    "provider_error",
    "provider_unavailable",
    "provider_rate_limited",
    "provider_timeout",
    "provider_authentication_failed",
    "provider_quota_exceeded",
    "storage_error",
    "storage_connection_failed",
    "storage_write_failed",
    "storage_read_failed",
    "timeout",
    "cancelled",
    "internal_error",
    "unknown_error",
    "policy_violation",
    "max_sessions_exceeded",
    "max_runs_exceeded",
    "capability_not_supported",
    "invalid_operation",
    "tool_error",
    "tool_not_found",
    "tool_execution_failed",
    "tool_permission_denied",
    "temporal_unavailable",
    "storage_full",
    "session_already_exists",
    "budget_exceeded",
    "approval_already_resolved",
    "approval_mismatch",
    "approval_not_found",
    "tool_call_not_found",
    "tool_result_already_submitted",
    "max_turns_exceeded",
]
"""Every taxonomy code; ``AsmError.code`` is always one of these."""

#: code -> (category, default message). The seed's full code list; order groups by category.
CODES: dict[ErrorCode, tuple[Category, str]] = {
    # validation
    "validation_error": ("validation", "Validation failed"),
    "invalid_input": ("validation", "Invalid input"),
    "missing_required_field": ("validation", "A required field is missing"),
    "invalid_format": ("validation", "Invalid format"),
    # state
    "invalid_status": ("state", "Invalid status"),
    "invalid_transition": ("state", "Invalid status transition"),
    "invalid_event_type": ("state", "Invalid event type"),
    "invalid_capability_type": ("state", "Invalid capability type"),
    "missing_required_capability": ("state", "A required capability is missing"),
    "stream_closed": ("state", "The stream is closed"),
    "context_mismatch": ("state", "Context mismatch"),
    "invalid_cursor": ("state", "Invalid cursor"),
    "session_mismatch": ("state", "Event belongs to another session"),
    "run_mismatch": ("state", "Event belongs to another run"),
    # resource
    "not_found": ("resource", "Not found"),
    "session_not_found": ("resource", "Session not found"),
    "run_not_found": ("resource", "Run not found"),
    "capability_not_found": ("resource", "Capability not found"),
    "already_exists": ("resource", "Already exists"),
    "duplicate_capability": ("resource", "Duplicate capability"),
    # provider
    "provider_error": ("provider", "The provider failed"),
    "provider_unavailable": ("provider", "The provider is unavailable"),
    "provider_rate_limited": ("provider", "The provider rate-limited the request"),
    "provider_timeout": ("provider", "The provider timed out"),
    "provider_authentication_failed": ("provider", "Authentication with the provider failed"),
    "provider_quota_exceeded": ("provider", "The provider quota is exceeded"),
    # storage
    "storage_error": ("storage", "Storage failed"),
    "storage_connection_failed": ("storage", "Could not connect to the event store"),
    "storage_write_failed": ("storage", "Writing to the event store failed"),
    "storage_read_failed": ("storage", "Reading from the event store failed"),
    # runtime
    "timeout": ("runtime", "Timed out"),
    "cancelled": ("runtime", "Cancelled"),
    "internal_error": ("runtime", "Internal error"),
    "unknown_error": ("runtime", "Unknown error"),
    "policy_violation": ("runtime", "Policy violation"),
    "temporal_unavailable": ("runtime", "The Temporal server is unreachable"),
    # concurrency
    "max_sessions_exceeded": ("concurrency", "Maximum number of sessions exceeded"),
    "max_runs_exceeded": ("concurrency", "Maximum number of runs exceeded"),
    "capability_not_supported": ("concurrency", "Capability not supported"),
    "invalid_operation": ("concurrency", "Invalid operation"),
    # tool
    "tool_error": ("tool", "Tool failed"),
    "tool_not_found": ("tool", "Tool not found"),
    "tool_execution_failed": ("tool", "Tool execution failed"),
    "tool_permission_denied": ("tool", "Tool permission denied"),
    # added since the seed
    "storage_full": ("storage", "The event store's disk is full"),
    "session_already_exists": ("resource", "The session id belongs to another session"),
    # a budget (tokens or money, per session, agent or tenant per day) is spent: retrying
    # would spend more, so it is final
    "budget_exceeded": ("resource", "A spending budget is exhausted"),
    "approval_already_resolved": ("state", "The approval was already resolved"),
    "approval_mismatch": ("state", "The digest does not match the pending action"),
    "approval_not_found": ("resource", "No pending approval has this digest"),
    "tool_call_not_found": ("resource", "No tool call with this id waits for a result"),
    "tool_result_already_submitted": ("state", "The tool call already has its result"),
    "max_turns_exceeded": ("runtime", "The run reached its maximum number of model calls"),
}

#: The only codes Temporal retries. Everything else fails the attempt for good.
RETRYABLE_CODES: frozenset[ErrorCode] = frozenset(
    {
        "provider_timeout",
        "provider_rate_limited",
        "provider_unavailable",
        "storage_connection_failed",
        "storage_full",  # space comes back (a log rotated, a volume grown): wait for it
        "timeout",
        "temporal_unavailable",
    }
)

#: Every other code: Temporal fails the attempt for good (see core.temporal.retry_policy).
NON_RETRYABLE_CODES: frozenset[ErrorCode] = frozenset(CODES) - RETRYABLE_CODES

#: Headers never kept in :class:`ProviderErrorInfo` (compared lower-case).
SECRET_HEADERS: frozenset[str] = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"}
)

#: Largest provider error body kept (its JSON, in UTF-8 bytes); larger bodies are cut.
MAX_ERROR_BODY_BYTES = 4096

#: Largest error message kept (UTF-8 bytes): it is what a user reads, one line of a log.
MAX_MESSAGE_BYTES = 1024

#: Largest error details kept (their JSON, UTF-8 bytes); larger details are shrunk.
MAX_DETAILS_BYTES = 4096

#: Largest header value (and request id) kept from a provider's answer.
_MAX_HEADER_BYTES = 256


class ProviderErrorInfo(BaseModel):
    """What the provider said when it failed: status, headers worth keeping, body."""

    status_code: int | None = None
    request_id: str | None = None
    retry_after: float | None = Field(
        default=None, ge=0, description="seconds, from retry-after (or retry-after-ms)"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    message: str | None = None

    @field_validator("headers")
    @classmethod
    def _drop_secret_headers(cls, v: dict[str, str]) -> dict[str, str]:
        # This lands in Temporal history and in events: a credential echoed by a proxy
        # must never get there (secrets stay in the worker).
        # Each kept header is short and redacted, and only the first 64 (a misbehaving proxy
        # can answer with thousands): headers are context, not content.
        return {
            scrub(k.lower(), _MAX_HEADER_BYTES): scrub(val, _MAX_HEADER_BYTES)
            for k, val in list(v.items())[:64]
            if k.lower() not in SECRET_HEADERS
        }

    @field_validator("body")
    @classmethod
    def _cap_body(cls, v: Any) -> Any:
        # An HTML error page can be megabytes; the whole error travels in an ApplicationError
        # (over the gRPC limit the server never hears of the failure) and in events.
        return scrub_value(v, MAX_ERROR_BODY_BYTES)

    @field_validator("message")
    @classmethod
    def _cap_message(cls, v: str | None) -> str | None:
        return None if v is None else scrub(v, MAX_MESSAGE_BYTES)

    @field_validator("request_id")
    @classmethod
    def _cap_request_id(cls, v: str | None) -> str | None:
        return None if v is None else scrub(v, _MAX_HEADER_BYTES)

    @model_validator(mode="after")
    def _retry_after_from_headers(self) -> ProviderErrorInfo:
        # Only the delta-seconds forms: an HTTP-date would need the current time, and core
        # never reads a clock (workflows must stay deterministic).
        if self.retry_after is None:
            seconds = _seconds(self.headers.get("retry-after"))
            if seconds is None:
                ms = _seconds(self.headers.get("retry-after-ms"))
                seconds = None if ms is None else ms / 1000.0
            if seconds is not None:
                self.retry_after = seconds
        return self


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class AsmError(Exception):
    """Base of every reported failure: a taxonomy code, its category and whether to retry.

    ``AsmError(code)`` builds an instance of the code's category subclass, so ``except
    StateError`` catches every state error however it was raised. A subclass given a code
    of another category is a programmer error (``ValueError``): the class and the code
    would disagree after a round trip through Temporal.
    """

    category: Category = "runtime"

    def __new__(cls, code: str, *args: Any, **kwargs: Any) -> AsmError:
        if cls is AsmError and code in CODES:
            cls = _CLASSES[CODES[code][0]]
        return super().__new__(cls, code, *args)

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        retryable: bool | None = None,
        provider_error: ProviderErrorInfo | None = None,
    ) -> None:
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        category, default_message = CODES[code]
        if type(self) is not AsmError and type(self).category != category:
            raise ValueError(
                f"{type(self).__name__} is for {type(self).category} errors, "
                f"but {code!r} is a {category} error"
            )
        self.code: ErrorCode = code
        self.category = category
        self.message = message or default_message
        self.details = dict(details or {})
        self.retryable = code in RETRYABLE_CODES if retryable is None else retryable
        self.provider_error = provider_error
        super().__init__(self.message)

    # message and details stay bounded and redacted however they are set (callers add to them).
    @property
    def message(self) -> str:
        """What happened and what to do, redacted, at most :data:`MAX_MESSAGE_BYTES`."""
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        """Set the message; it is redacted and capped."""
        self._message = scrub(value, MAX_MESSAGE_BYTES)

    @property
    def details(self) -> dict[str, Any]:
        """Machine-readable context, redacted, its JSON at most :data:`MAX_DETAILS_BYTES`."""
        return self._details

    @details.setter
    def details(self, value: dict[str, Any]) -> None:
        """Set the details; they are redacted and shrunk to fit."""
        bounded = scrub_value(value, MAX_DETAILS_BYTES)
        if not isinstance(bounded, dict):  # too big to keep its shape: its start, as text
            bounded = {"truncated": scrub_value(bounded, MAX_DETAILS_BYTES - 20)}
        self._details = bounded

    def scrubbed(self, secrets: Iterable[str]) -> AsmError:
        """A copy with every value of ``secrets`` redacted and no exception chain.

        What an activity raises and records: the original's ``__cause__`` (an SDK exception
        quoting the provider's whole answer) must not ride along into the Temporal failure.
        """
        secrets = list(secrets)
        pe = self.provider_error
        return error(
            self.code,
            redact(self.message, secrets),
            details=scrub_value(self.details, MAX_DETAILS_BYTES, secrets),
            retryable=self.retryable,
            provider_error=None
            if pe is None
            else ProviderErrorInfo(
                status_code=pe.status_code,
                request_id=None if pe.request_id is None else redact(pe.request_id, secrets),
                retry_after=pe.retry_after,
                headers={k: redact(v, secrets) for k, v in pe.headers.items()},
                body=scrub_value(pe.body, MAX_ERROR_BODY_BYTES, secrets),
                message=None if pe.message is None else redact(pe.message, secrets),
            ),
        )

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's default pickling replays ``args`` positionally, which would lose the
        # keyword-only fields (and a bare message is not a code).
        return (_rebuild, (self.to_dict(),))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in events, Temporal failure details and CLI output."""
        return {
            "code": self.code,
            "category": self.category,
            "message": self.message,
            "retryable": self.retryable,
            "details": self.details,
            "provider_error": (
                self.provider_error.model_dump(exclude_none=True) if self.provider_error else None
            ),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AsmError:
        """Rebuild an error (of the right subclass) from :meth:`to_dict` output.

        Lenient on purpose, since the dict may come from another SDK or an older worker: an
        unknown code becomes ``unknown_error`` (the original is kept in ``details["code"]``)
        and an unreadable ``provider_error`` is kept raw in ``details["provider_error"]``.
        """
        code = data.get("code")
        raw_details = data.get("details")
        details: dict[str, Any] = dict(raw_details) if isinstance(raw_details, dict) else {}
        if raw_details is not None and not isinstance(raw_details, dict):
            details["value"] = raw_details
        if not isinstance(code, str) or code not in CODES:
            details.setdefault("code", code)
            code = "unknown_error"
        code = cast(ErrorCode, code)
        provider_error: ProviderErrorInfo | None = None
        pe = data.get("provider_error")
        if pe:
            try:
                provider_error = ProviderErrorInfo.model_validate(pe)
            except PydanticValidationError:
                details.setdefault("provider_error", pe)
        retryable = data.get("retryable")
        message = data.get("message")
        return error(
            code,
            message if isinstance(message, str) else None,
            details=details,
            retryable=retryable if isinstance(retryable, bool) else None,
            provider_error=provider_error,
        )


def _rebuild(data: dict[str, Any]) -> AsmError:
    return AsmError.from_dict(data)


class ValidationError(AsmError):
    """Bad input: the caller must change the request."""

    category = "validation"


class StateError(AsmError):
    """The operation is not allowed in the current state."""

    category = "state"


class ResourceError(AsmError):
    """A named thing does not exist, or already exists."""

    category = "resource"


class ProviderError(AsmError):
    """The model provider failed, refused or is unreachable."""

    category = "provider"


class StorageError(AsmError):
    """The event store failed."""

    category = "storage"


class RuntimeFailure(AsmError):
    """Timeouts, cancellation and internal faults."""

    category = "runtime"


class ConcurrencyError(AsmError):
    """A limit was hit or the operation is unsupported."""

    category = "concurrency"


class ToolError(AsmError):
    """A tool call failed."""

    category = "tool"


#: category -> the AsmError subclass that carries it.
_CLASSES: dict[Category, type[AsmError]] = {
    "validation": ValidationError,
    "state": StateError,
    "resource": ResourceError,
    "provider": ProviderError,
    "storage": StorageError,
    "runtime": RuntimeFailure,
    "concurrency": ConcurrencyError,
    "tool": ToolError,
}


def error(
    code: ErrorCode,
    message: str | None = None,
    *,
    details: dict[str, Any] | None = None,
    retryable: bool | None = None,
    provider_error: ProviderErrorInfo | None = None,
) -> AsmError:
    """Build the error of the right subclass for ``code``."""
    if code not in CODES:
        raise ValueError(f"unknown error code {code!r}")
    cls = _CLASSES[CODES[code][0]]
    return cls(code, message, details=details, retryable=retryable, provider_error=provider_error)


def is_retryable(code: str) -> bool:
    """Whether Temporal should retry a failure with this code."""
    return code in RETRYABLE_CODES


def parse_error_code(value: str) -> ErrorCode:
    """``value`` as an :data:`ErrorCode`; ``ValueError`` naming the known codes otherwise."""
    if value not in CODES:
        raise ValueError(f"unknown error code {value!r}; known: {', '.join(CODES)}")
    return value


# The Literal and the table must list the same codes: the type is what mypy checks callers
# against, the table is what the runtime checks.
assert set(get_args(ErrorCode)) == set(CODES), "ErrorCode and CODES disagree"
