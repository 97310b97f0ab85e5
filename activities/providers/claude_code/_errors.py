"""Claude Code's failures as taxonomy errors.

A result with ``is_error`` is classified by its ``api_error_status`` (429 →
``provider_rate_limited``, 529/5xx → ``provider_unavailable``, 401/403 →
``provider_authentication_failed``, 400 → ``invalid_input``, 408/504 → ``provider_timeout``),
else by the assistant message's ``error`` kind. Hitting ``max_turns`` is not an error: the run
completes with ``stop_reason="max_turns"``.
"""

from __future__ import annotations

import re

from agent_session_manager.core.errors import AsmError, ErrorCode, ProviderErrorInfo, error

_STATUS_CODES: dict[int, ErrorCode] = {
    400: "invalid_input",
    401: "provider_authentication_failed",
    402: "provider_quota_exceeded",
    403: "provider_authentication_failed",
    404: "invalid_input",
    408: "provider_timeout",
    413: "invalid_input",
    422: "invalid_input",
    429: "provider_rate_limited",
    504: "provider_timeout",
}

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
    if status is not None:
        code = _STATUS_CODES.get(status) or (
            "provider_unavailable" if status >= 500 else "provider_error"
        )
    elif error_kind in _ERROR_KINDS:
        code = _ERROR_KINDS[error_kind]
    elif re.search(r"timeout|timed out", message, re.IGNORECASE):
        code = "provider_timeout"
    elif re.search(r"overloaded|connection|ECONNREFUSED|socket", message, re.IGNORECASE):
        code = "provider_unavailable"
    else:
        code = "provider_error"
    return error(
        code,
        f"claude-code: {message}",
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
