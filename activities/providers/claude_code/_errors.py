"""Claude Code's failures as taxonomy errors.

A result with ``is_error`` is classified by its ``api_error_status`` through the shared map
(:mod:`activities.providers._http_status`), else by the assistant message's ``error`` kind,
else by the message's words. Hitting ``max_turns`` is not an error: the run completes with
``stop_reason="max_turns"``.
"""

from __future__ import annotations

import re

from agent_session_manager.activities.providers._http_status import (
    code_for_status,
    page_message,
)
from agent_session_manager.core.errors import AsmError, ErrorCode, ProviderErrorInfo, error

#: ``AssistantMessage.error`` kinds (the CLI's own classification of an API failure).
_ERROR_KINDS: dict[str, ErrorCode] = {
    "rate_limit": "provider_rate_limited",
    "server_error": "provider_unavailable",
    "authentication_failed": "provider_authentication_failed",
    "billing_error": "provider_quota_exceeded",
    "invalid_request": "invalid_input",
}


def classify_result(
    *,
    status: int | None,
    error_kind: str | None,
    message: str,
    subtype: str | None = None,
    errors: list[str] | None = None,
) -> AsmError:
    """A failed Claude Code result as a taxonomy error."""
    page = page_message(status, message)  # a gateway's page, quoted: megabytes of markup
    if status is not None:
        code = code_for_status(status)
    elif error_kind in _ERROR_KINDS:
        code = _ERROR_KINDS[error_kind]
    elif page is not None:  # its words are the page's, not the failure's
        code = "provider_unavailable"
    elif re.search(r"timeout|timed out", message, re.IGNORECASE):
        code = "provider_timeout"
    elif re.search(r"overloaded|connection|ECONNREFUSED|socket", message, re.IGNORECASE):
        code = "provider_unavailable"
    else:
        code = "provider_error"
    return error(
        code,
        f"claude-code: {page or message}",
        details={"subtype": subtype, "errors": errors or [], "error_kind": error_kind},
        provider_error=ProviderErrorInfo(status_code=status, message=message),
    )


def sdk_failure(exc: Exception, stderr: list[str]) -> AsmError:
    """A ``ClaudeSDKError`` (the CLI broke the protocol or died) as ``provider_error``."""
    return error(
        "provider_error",
        f"Claude Code failed: {exc}".splitlines()[0],
        details={"stderr": stderr, "exception": type(exc).__name__},
    )
