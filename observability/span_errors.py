"""An exception on a span, redacted and capped: what a failure may put in an exported trace.

OpenTelemetry's ``record_exception`` copies the exception's message and whole formatted
chain into span attributes, and a provider's error can quote a multi-megabyte page that
echoes the API key: every exporter would ship it. :func:`record_error` records the same
``exception`` event (semantic-convention attribute names) and the span status, each value
passed through :func:`core.scrub.scrub` and capped at :data:`MAX_SPAN_ATTRIBUTE_BYTES`.
"""

from __future__ import annotations

import traceback

from opentelemetry.trace import Span, Status, StatusCode

from agent_session_manager.core.scrub import scrub

#: Longest span attribute (and status description) set from an error, in UTF-8 bytes. Also
#: the tracer provider's attribute length limit (``observability.config``) unless
#: ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` says otherwise: a backstop for every other attribute.
MAX_SPAN_ATTRIBUTE_BYTES = 8192


def bounded(text: str) -> str:
    """``text`` redacted and capped for a span attribute."""
    return scrub(text, MAX_SPAN_ATTRIBUTE_BYTES)


def record_error(span: Span, exc: BaseException, description: str | None = None) -> None:
    """Mark ``span`` failed by ``exc``: status ERROR and an ``exception`` event, bounded."""
    span.set_status(Status(StatusCode.ERROR, bounded(description or str(exc))))
    span.add_event(
        "exception",
        {
            "exception.type": type(exc).__qualname__,
            "exception.message": bounded(str(exc)),
            "exception.stacktrace": bounded("".join(traceback.format_exception(exc))),
            "exception.escaped": False,
        },
    )
