"""One short WARNING line per failed provider attempt; the SDK's own record of it only at DEBUG."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
from temporalio.exceptions import ApplicationError

from agent_session_manager.core.errors import ProviderErrorInfo, error
from agent_session_manager.core.protocol import (
    RECORD_LIFECYCLE_ACTIVITY,
    STREAM_PROVIDER_ACTIVITY,
)
from agent_session_manager.observability.log_failures import (
    FailedAttemptFilter,
    log_failed_attempt,
)

KEY = "sk-ant-api03-LOGS-" + "z" * 30


def _sdk_record(activity_type: str, exc: BaseException) -> logging.LogRecord:
    """The record the SDK's activity logger makes for "Completing activity as failed"."""
    try:
        raise exc
    except BaseException:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "temporalio.activity",
        logging.WARNING,
        __file__,
        1,
        "Completing activity as failed",
        None,
        exc_info,
    )
    record.__dict__["__temporal_error_identifier"] = "ActivityFailure"
    record.__dict__["temporal_activity"] = {"activity_type": activity_type}
    return record


@pytest.fixture
def sdk_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("temporalio.activity")
    level = logger.level
    yield logger
    logger.setLevel(level)


def test_the_sdks_record_of_a_typed_provider_failure_is_dropped_below_debug(
    sdk_logger: logging.Logger,
) -> None:
    sdk_logger.setLevel(logging.INFO)
    record = _sdk_record(
        STREAM_PROVIDER_ACTIVITY, ApplicationError("m", type="provider_unavailable")
    )
    assert FailedAttemptFilter().filter(record) is False


def test_at_debug_it_is_kept_as_debug(sdk_logger: logging.Logger) -> None:
    sdk_logger.setLevel(logging.DEBUG)
    record = _sdk_record(
        STREAM_PROVIDER_ACTIVITY, ApplicationError("m", type="provider_unavailable")
    )
    assert FailedAttemptFilter().filter(record) is True
    assert (record.levelno, record.levelname) == (logging.DEBUG, "DEBUG")


@pytest.mark.parametrize(
    ("activity_type", "exc"),
    [
        (RECORD_LIFECYCLE_ACTIVITY, ApplicationError("m", type="storage_write_failed")),
        (STREAM_PROVIDER_ACTIVITY, ApplicationError("m", type="SomethingUntyped")),
        (STREAM_PROVIDER_ACTIVITY, RuntimeError("a bug")),
    ],
)
def test_other_failures_keep_their_warning(
    sdk_logger: logging.Logger, activity_type: str, exc: BaseException
) -> None:
    sdk_logger.setLevel(logging.INFO)
    record = _sdk_record(activity_type, exc)
    assert FailedAttemptFilter().filter(record) is True
    assert record.levelno == logging.WARNING


def test_a_failed_attempt_is_one_line_and_the_traceback_is_debug_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    err = error(
        "provider_unavailable",
        "anthropic: <html>\n<p>gateway</p>\n" + "x" * 10_000,
        provider_error=ProviderErrorInfo(status_code=503),
    )
    cause = RuntimeError(f"upstream page quoting x-api-key: {KEY} " + "y" * 1_000_000)
    with caplog.at_level(logging.INFO):
        log_failed_attempt(err, provider="anthropic", attempt=2, cause=cause, secrets=[KEY])
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("provider anthropic attempt 2 failed: provider_unavailable (HTTP 503)")
    assert "\n" not in line and len(line.encode()) < 512
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        log_failed_attempt(err, provider="anthropic", attempt=2, cause=cause, secrets=[KEY])
    warning, traceback = caplog.records
    assert warning.levelno == logging.WARNING
    assert traceback.levelno == logging.DEBUG and "RuntimeError" in traceback.getMessage()
    assert len(traceback.getMessage().encode()) < 9 * 1024
    assert KEY not in caplog.text
