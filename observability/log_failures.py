"""One short WARNING line per failed provider attempt; the traceback only at DEBUG.

A provider failure used to be logged by the Temporal SDK ("Completing activity as failed")
with the whole exception chain, which quotes the provider's answer: a 5 MB error page made a
5 MB log line, three times over. Now the provider activity calls :func:`log_failed_attempt`:
one WARNING line (provider, attempt, code, HTTP status, the start of the message), and at
DEBUG the traceback of the original exception, redacted and capped. The SDK's own record of
that failure is demoted to DEBUG by :class:`FailedAttemptFilter` (it would be a second line
for the same attempt, with a traceback).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable

from temporalio.exceptions import ApplicationError

from agent_session_manager.core.errors import CODES, AsmError
from agent_session_manager.core.protocol import STREAM_PROVIDER_ACTIVITY
from agent_session_manager.core.scrub import scrub

log = logging.getLogger("agent_session_manager.activities.provider")

#: The start of the message the WARNING line keeps: enough to read, short enough to scan.
SHORT_MESSAGE_BYTES = 300

#: The DEBUG traceback is cut here: the frames come first, the provider's answer last.
MAX_TRACEBACK_BYTES = 8192


def log_failed_attempt(
    err: AsmError,
    *,
    provider: str,
    attempt: int,
    cause: BaseException | None,
    secrets: Iterable[str] = (),
) -> None:
    """Log one failed attempt: a WARNING line, and the (redacted, capped) traceback at DEBUG."""
    status = err.provider_error.status_code if err.provider_error is not None else None
    log.warning(
        "provider %s attempt %d failed: %s%s: %s",
        provider,
        attempt,
        err.code,
        f" (HTTP {status})" if status is not None else "",
        " ".join(scrub(err.message, SHORT_MESSAGE_BYTES).split()),  # one line, always
    )
    if cause is not None and log.isEnabledFor(logging.DEBUG):
        text = "".join(traceback.format_exception(cause))
        log.debug(
            "provider %s attempt %d traceback:\n%s",
            provider,
            attempt,
            scrub(text, MAX_TRACEBACK_BYTES, secrets),
        )


class FailedAttemptFilter(logging.Filter):
    """Demote the SDK's "Completing activity as failed" to DEBUG for provider attempts that
    :func:`log_failed_attempt` already reported (a taxonomy error from the provider activity).

    Any other activity failure, or an untyped one, keeps its WARNING.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.__dict__.get("__temporal_error_identifier") != "ActivityFailure":
            return True
        details = record.__dict__.get("temporal_activity")
        exc = record.exc_info[1] if record.exc_info else None
        if (
            isinstance(details, dict)
            and details.get("activity_type") == STREAM_PROVIDER_ACTIVITY
            and isinstance(exc, ApplicationError)
            and exc.type in CODES
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            # The logger's level was checked for WARNING; a handler without a level of its
            # own would still print the demoted record, so drop it unless DEBUG is on.
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_failed_attempts() -> None:
    """Install :class:`FailedAttemptFilter` on the SDK's activity logger (once)."""
    logger = logging.getLogger("temporalio.activity")
    if not any(isinstance(f, FailedAttemptFilter) for f in logger.filters):
        logger.addFilter(FailedAttemptFilter())
