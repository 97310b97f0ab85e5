"""Silence OpenTelemetry's "Failed to detach context" when an evicted workflow is closed."""

from __future__ import annotations

import logging


class EvictionDetachFilter(logging.Filter):
    """Drop OpenTelemetry's "Failed to detach context" when a workflow coroutine is closed.

    When a workflow leaves the worker's cache (eviction, worker shutdown), the SDK closes its
    coroutines; the tracing interceptor's ``finally`` then detaches its context from another
    ``contextvars.Context`` and OpenTelemetry logs the ``ValueError`` at ERROR
    (temporalio/sdk-python#441). Spans are unaffected. Only that case is dropped: the record's
    exception must have been raised while handling ``GeneratorExit``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() != "Failed to detach context" or not record.exc_info:
            return True
        exc = record.exc_info[1]
        return not (isinstance(exc, ValueError) and isinstance(exc.__context__, GeneratorExit))


def quiet_eviction_detach() -> None:
    """Install :class:`EvictionDetachFilter` on OpenTelemetry's context logger (once)."""
    logger = logging.getLogger("opentelemetry.context")
    if not any(isinstance(f, EvictionDetachFilter) for f in logger.filters):
        logger.addFilter(EvictionDetachFilter())
