"""The one place core/ speaks Temporal: error conversion and taxonomy-derived retry policies.

An :class:`~core.errors.AsmError` crosses a Temporal boundary as an ``ApplicationError`` whose
``type`` is the taxonomy code, ``non_retryable`` is ``not retryable``, ``next_retry_delay``
comes from the provider's ``retry-after`` and the single detail is ``AsmError.to_dict()``.
:func:`from_failure` undoes it on the other side, however deeply Temporal wrapped it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

import pydantic
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.common import RawValue, RetryPolicy
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadConverter,
)
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)
from temporalio.service import RPCError, RPCStatusCode

from agent_session_manager.core.errors import (
    CODES,
    MAX_MESSAGE_BYTES,
    NON_RETRYABLE_CODES,
    AsmError,
    ProviderErrorInfo,
    error,
    parse_error_code,
)
from agent_session_manager.core.scrub import scrub


def to_application_error(err: AsmError) -> ApplicationError:
    """Wrap a domain error for Temporal, keeping code, retry bit and retry-after.

    The message is ``[code] message``: the Temporal UI and the ``temporal`` CLI show a
    failure's message first, and a reader should see the taxonomy code there, not only in the
    failure's type. :func:`from_failure` reads the error back from the details, not the message.
    """
    delay: timedelta | None = None
    if err.provider_error is not None and err.provider_error.retry_after is not None:
        delay = timedelta(seconds=max(err.provider_error.retry_after, 0.0))
    return ApplicationError(
        str(err),
        err.to_dict(),
        type=err.code,
        non_retryable=not err.retryable,
        next_retry_delay=delay,
    )


def from_failure(exc: BaseException) -> AsmError:
    """Recover the domain error from any Temporal failure chain (activity, child, update).

    Follows causes through ``ActivityError``, ``ChildWorkflowError`` and the client's
    ``WorkflowFailureError`` / ``WorkflowUpdateFailedError``. An ``ApplicationError`` whose
    ``type`` is a taxonomy code comes back as that code, with its details, retry bit and
    retry-after; Temporal's own cancellation and timeouts map to ``cancelled`` and
    ``timeout`` (a heartbeat timeout to ``provider_timeout``, as only provider activities
    heartbeat); anything else is ``internal_error`` carrying what was known about it.
    """
    seen: set[int] = set()
    foreign: ApplicationError | None = None
    current: BaseException | None = exc
    # The id set guards against a cause cycle, which Python allows to be built by hand.
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AsmError):
            return current
        if isinstance(current, ApplicationError):
            if current.type in CODES:
                return _from_application_error(current)
            foreign = foreign or current
        elif isinstance(current, CancelledError):
            return error("cancelled", current.message or "Cancelled")
        elif isinstance(current, TimeoutError):
            return _from_timeout(current)
        current = current.__cause__
    if foreign is not None:
        return error(
            "internal_error",
            foreign.message or "Application error",
            details={"type": foreign.type, "details": _jsonish(foreign.details)},
        )
    return error(
        "internal_error", str(exc) or type(exc).__name__, details={"exception": type(exc).__name__}
    )


def _from_application_error(app: ApplicationError) -> AsmError:
    assert app.type is not None
    first: Any = app.details[0] if app.details else None
    if isinstance(first, dict) and first.get("code") == app.type:
        return AsmError.from_dict(first)
    # Raised by another SDK (or by hand) with our code as its type but not our detail shape:
    # keep whatever detail it sent rather than dropping it.
    details: dict[str, Any] = {}
    if isinstance(first, dict) and len(app.details) == 1:
        details = dict(first)
    elif app.details:
        details = {"details": _jsonish(app.details)}
    provider_error: ProviderErrorInfo | None = None
    if app.next_retry_delay is not None:
        provider_error = ProviderErrorInfo(retry_after=app.next_retry_delay.total_seconds())
    return error(
        parse_error_code(app.type),
        app.message or None,
        details=details,
        retryable=not app.non_retryable,
        provider_error=provider_error,
    )


def _from_timeout(timeout: TimeoutError) -> AsmError:
    details: dict[str, Any] = {"timeout_type": timeout.type.name if timeout.type else None}
    # After retries run out on a deadline, the cause is the last attempt's failure: keep it,
    # it is usually what the user wants to see.
    if timeout.__cause__ is not None:
        details["last_failure"] = from_failure(timeout.__cause__).to_dict()
    if timeout.type == TimeoutType.HEARTBEAT:
        return error(
            "provider_timeout", "The provider went silent (heartbeat timeout)", details=details
        )
    return error("timeout", timeout.message or "Timed out", details=details)


def _jsonish(values: Any) -> list[Any]:
    return [
        v if isinstance(v, str | int | float | bool | dict | list) or v is None else repr(v)
        for v in values
    ]


#: What the SDK's transport says when a connection broke rather than the server answering: an
#: RPC cut mid-flight can surface as ``UNKNOWN``/``CANCELLED`` with one of these in the text.
_TRANSPORT_WORDS = ("transport error", "tcp connect", "connection", "broken pipe", "h2 protocol")
#: The server's own answer (``DEADLINE_EXCEEDED``) when no worker took a query in time: the
#: server was reached, so it is no outage.
QUERY_NOT_TAKEN = "query timed out before a worker could process it"


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the Temporal server could not be reached, as opposed to answering.

    ``UNAVAILABLE`` (connection refused, reset, DNS), ``DEADLINE_EXCEEDED`` (no answer in
    time), a transport failure reported under another status, or a failed first connect (the
    SDK raises a ``RuntimeError`` for that). A ``NOT_FOUND`` is an answer, never an outage: a
    caller that mistook one for the other would give up on a run that is still going.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RPCError):
            if QUERY_NOT_TAKEN in current.message.lower():
                return False
            if current.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                return True
            if current.status in (RPCStatusCode.UNKNOWN, RPCStatusCode.CANCELLED):
                text = current.message.lower()
                return any(word in text for word in _TRANSPORT_WORDS)
            return False
        if isinstance(current, ConnectionError):
            return True
        if isinstance(current, RuntimeError) and str(current).startswith("Failed client connect"):
            return True
        current = current.__cause__ or current.__context__
    return False


def temporal_unavailable(exc: BaseException, address: str | None = None) -> AsmError:
    """The ``temporal_unavailable`` error for ``exc`` (see :func:`is_unreachable`): says where
    and what to do, so it is never mistaken for a missing run or a provider outage."""
    where = f"Temporal at {address}" if address else "Temporal"
    cause = exc.message if isinstance(exc, RPCError) else str(exc)
    return error(
        "temporal_unavailable",
        f"{where} is unreachable ({cause[:300]}); is the server running? Start one with "
        "`asm dev`, or set ASM_TEMPORAL_ADDRESS to your cluster's frontend",
        details={"address": address, "cause": cause[:300]},
    )


def retry_policy(
    base: RetryPolicy | None = None, *, extra_non_retryable: tuple[str, ...] = ()
) -> RetryPolicy:
    """A copy of ``base`` whose non-retryable types are the non-retryable codes, plus extras.

    Types ``base`` already lists as non-retryable stay so: dropping them would silently
    retry what its author chose not to. Never mutates ``base``: a policy object may be
    shared across workflows.
    """
    base = base or RetryPolicy()
    types = sorted(
        NON_RETRYABLE_CODES | set(extra_non_retryable) | set(base.non_retryable_error_types or ())
    )
    return replace(base, non_retryable_error_types=types)


#: How many of pydantic's problems an error names: a megabyte of ``[1, 1, …]`` has a
#: problem per item, and the error travels in a Temporal failure (and an event).
MAX_PROBLEMS = 10


def invalid_payload(exc: pydantic.ValidationError, what: str) -> AsmError:
    """A ``validation_error`` naming pydantic's problems (the first few): what a user reads."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])[:200] or 'input'}: {e['msg'][:500]}"
        for e in errors[:MAX_PROBLEMS]
    )
    more = f" (and {len(errors) - MAX_PROBLEMS} more)" if len(errors) > MAX_PROBLEMS else ""
    return error(
        "validation_error",
        f"invalid {what}: {problems}{more}",
        details={"errors": errors[:MAX_PROBLEMS], "count": len(errors)},
    )


class _ValidatingJSONConverter(PydanticJSONPlainPayloadConverter):
    """pydantic JSON whose decode failures are taxonomy errors Temporal can report."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        # A plain exception while decoding a workflow or update input wedges the workflow
        # task (retried forever); an ApplicationError fails or rejects it with a typed error.
        try:
            return super().from_payload(payload, type_hint)
        except AsmError as err:
            raise to_application_error(err) from err
        except pydantic.ValidationError as exc:
            raise to_application_error(
                invalid_payload(exc, getattr(type_hint, "__name__", "payload"))
            ) from exc


#: One JSON converter for every :class:`_PayloadConverter`. The worker makes a new payload
#: converter for every workflow activation; building the pydantic converter each time cost
#: ~2% of the worker's event loop (py-spy), and its cache of type adapters began empty every
#: time. The converter is stateless but for that cache (thread-safe, bounded by pydantic's
#: converter), and the types it caches are our passed-through models and builtins.
_JSON_CONVERTER = _ValidatingJSONConverter()

_CONVERTERS = tuple(
    _JSON_CONVERTER if isinstance(c, JSONPlainPayloadConverter) else c
    for c in DefaultPayloadConverter.default_encoding_payload_converters
)


class _PayloadConverter(CompositePayloadConverter):
    """The default converters, with JSON replaced by :class:`_ValidatingJSONConverter`."""

    def __init__(self) -> None:
        super().__init__(*_CONVERTERS)

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        if type_hints is None:
            # Untyped is how the SDK decodes our ``*args`` entry points, and a raise there
            # (in a workflow's start) fails the task before our code can run, on every retry.
            # What cannot be read stays raw, for :func:`decode_input` to refuse, typed.
            return [self._untyped(payload) for payload in payloads]
        # An unknown encoding or bytes no converter can read is the sender's mistake: say so
        # with a taxonomy error (a KeyError here would fail the workflow task, forever).
        try:
            return super().from_payloads(payloads, type_hints)
        except ApplicationError:
            raise
        except Exception as exc:
            raise to_application_error(
                error(
                    "validation_error",
                    f"undecodable payload: {type(exc).__name__}: {exc}"[:1000],
                    details={"exception": type(exc).__name__},
                )
            ) from exc

    def _untyped(self, payload: Payload) -> Any:
        try:
            return super().from_payloads([payload], None)[0]
        except Exception:
            return RawValue(payload)


#: Causes kept below a failure: enough for "activity failed because the provider said X"; a
#: deeper chain adds size, not understanding.
MAX_FAILURE_CAUSES = 3

#: Longest stack trace kept per failure (UTF-8 bytes).
MAX_STACK_TRACE_BYTES = 4096

#: A failure (with its causes and details) above this is cut to its first entry: the server
#: takes at most 4 MB per gRPC message, and a failure that does not fit never arrives (the
#: activity then ends much later, as a misclassified timeout).
MAX_FAILURE_BYTES = 64 * 1024


def _is_domain_failure(failure: Failure) -> bool:
    kind = (
        failure.application_failure_info.type
        if failure.HasField("application_failure_info")
        else ""
    )
    return kind in CODES and kind != "internal_error"


class _BoundedFailureConverter(DefaultFailureConverter):
    """The default failure conversion, then every message and stack trace redacted and capped
    and the cause chain cut, so any exception, however big its chain, fits in a gRPC message.

    :class:`AsmError` is already bounded; this catches the rest (an SDK exception quoting a
    whole error page, a foreign ``ApplicationError``, a chain of them).
    """

    def to_failure(
        self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        node, depth = failure, 0
        while True:
            node.message = scrub(node.message, MAX_MESSAGE_BYTES)
            node.stack_trace = scrub(node.stack_trace, MAX_STACK_TRACE_BYTES)
            if _is_domain_failure(node):
                # A taxonomy error is the whole story (code, message, details): the SDK frames
                # that raised it would bury it in the UI. An internal_error keeps its stack.
                node.stack_trace = ""
            if not node.HasField("cause"):
                break
            if depth >= MAX_FAILURE_CAUSES:
                node.ClearField("cause")
                break
            node, depth = node.cause, depth + 1
        if failure.ByteSize() > MAX_FAILURE_BYTES:
            failure.ClearField("cause")
        if failure.ByteSize() > MAX_FAILURE_BYTES:  # details we did not write (another SDK's)
            failure.stack_trace = ""
            if failure.HasField("application_failure_info"):
                failure.application_failure_info.ClearField("details")


data_converter = DataConverter(
    payload_converter_class=_PayloadConverter, failure_converter_class=_BoundedFailureConverter
)
"""The data converter every client and worker of this project uses (pydantic JSON)."""


M = TypeVar("M", bound=pydantic.BaseModel)


def decode_input(
    args: Sequence[Any], model: type[M], *, what: str, converter: PayloadConverter
) -> M:
    """The single argument of an entry point (workflow, update, signal), decoded defensively.

    Entry points take ``*args`` (and signals raw payloads), so no input a caller can send
    (none, two, ``null``, an unknown encoding, bytes that are not JSON, the wrong shape) makes
    the SDK raise before our code runs: every problem is a ``validation_error`` saying what
    to send instead.
    """
    shape = f"one argument, a {model.__name__} JSON object"
    if len(args) != 1:
        got = "none" if not args else f"{len(args)} arguments"
        raise error(
            "validation_error",
            f"{what} takes {shape}; got {got}",
            details={"expected": model.__name__, "arguments": len(args)},
        )
    value = args[0]
    if isinstance(value, RawValue):
        try:
            value = converter.from_payloads([value.payload], [model])[0]
        except ApplicationError as exc:
            err = from_failure(exc)
            err.message = f"{what}: {err.message}"
            raise err from None
        except Exception as exc:
            raise error(
                "validation_error",
                f"{what}: undecodable argument: {type(exc).__name__}: {exc}"[:1000],
                details={"expected": model.__name__},
            ) from None
    if isinstance(value, model):
        return value
    if value is None:
        raise error(
            "validation_error",
            f"{what} takes {shape}; got null",
            details={"expected": model.__name__},
        )
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        raise invalid_payload(exc, f"{what} argument ({model.__name__})") from None
    except AsmError as err:
        raise err from None
