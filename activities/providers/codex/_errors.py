"""The Codex CLI's failures as taxonomy errors.

The upstream HTTP status a turn's ``codexErrorInfo`` forwards is classified by the shared map
(:mod:`activities.providers._http_status`); without one, the ``codexErrorInfo`` variant, then
an OpenAI JSON error body in the message, then the message's words decide: usage and budget
limits → ``provider_quota_exceeded``, idle stream timeouts → ``provider_timeout``, dropped
streams → ``provider_unavailable``. The CLI's own retries are off, so every retry is
Temporal's.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from agent_session_manager.activities.providers._http_status import (
    code_for_status,
    page_message,
)
from agent_session_manager.activities.providers.codex._transport import RpcError
from agent_session_manager.core.errors import AsmError, ErrorCode, ProviderErrorInfo, error

_INFO_CODES: dict[str, ErrorCode] = {
    "rateLimitExceeded": "provider_rate_limited",
    "usageLimitExceeded": "provider_quota_exceeded",
    "sessionBudgetExceeded": "provider_quota_exceeded",
    "serverOverloaded": "provider_unavailable",
    "internalServerError": "provider_unavailable",
    "flexUnavailable": "provider_unavailable",
    "unauthorized": "provider_authentication_failed",
    "badRequest": "invalid_input",
    "contextWindowExceeded": "invalid_input",
    "cyberPolicy": "policy_violation",
    "misalignmentPolicyViolation": "policy_violation",
    "tooManyDenials": "tool_permission_denied",
    "sandboxError": "tool_execution_failed",
    "threadRollbackFailed": "internal_error",
}

#: The ``error.type`` of an OpenAI JSON error body (Codex forwards 4xx bodies verbatim).
_BODY_TYPES: dict[str, ErrorCode] = {
    "invalid_request_error": "invalid_input",
    "authentication_error": "provider_authentication_failed",
    "permission_error": "provider_authentication_failed",
    "rate_limit_error": "provider_rate_limited",
    "insufficient_quota": "provider_quota_exceeded",
    "server_error": "provider_unavailable",
    "overloaded_error": "provider_unavailable",
}

_RETRY_IN = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)


def classify_turn_error(turn_error: dict[str, Any]) -> AsmError:
    """A Codex ``TurnError`` as a taxonomy error."""
    message = str(turn_error.get("message") or "the Codex turn failed")
    info = turn_error.get("codexErrorInfo")
    status: int | None = None
    variant: str | None = None
    if isinstance(info, dict) and info:
        variant, payload = next(iter(info.items()))
        if isinstance(payload, dict) and isinstance(payload.get("httpStatusCode"), int):
            status = payload["httpStatusCode"]
    elif isinstance(info, str):
        variant = info

    body: Any = None
    with contextlib.suppress(ValueError):
        body = json.loads(message)
    body_error = body.get("error") if isinstance(body, dict) else None
    human = message
    # A gateway's page forwarded as the message: megabytes of markup, no API error in it.
    page = None if isinstance(body_error, dict) else page_message(status, message)
    if isinstance(body_error, dict) and body_error.get("message"):
        human = str(body_error["message"])
    elif page is not None:
        human = page

    code: ErrorCode
    if status is not None:
        code = code_for_status(status)
    elif variant in _INFO_CODES:
        code = _INFO_CODES[variant]
    elif isinstance(body_error, dict) and (
        body_error.get("type") in _BODY_TYPES or body_error.get("code") in _BODY_TYPES
    ):
        code = (
            _BODY_TYPES.get(str(body_error.get("type"))) or _BODY_TYPES[str(body_error.get("code"))]
        )
    elif page is not None:  # its words are the page's, not the failure's
        code = "provider_unavailable"
    elif re.search(r"timeout|timed out", message, re.IGNORECASE):
        code = "provider_timeout"
    elif variant in {
        "httpConnectionFailed",
        "responseStreamConnectionFailed",
        "responseStreamDisconnected",
        "responseTooManyFailedAttempts",
    } or re.search(
        r"stream disconnected|connection|error sending request|unexpected status 5",
        message,
        re.IGNORECASE,
    ):
        code = "provider_unavailable"
    else:
        code = "provider_error"

    retry_after: float | None = None
    if m := _RETRY_IN.search(message):
        retry_after = float(m.group(1)) / (1000 if m.group(2).lower() == "ms" else 1)
    return error(
        code,
        f"codex: {human}",
        details={"codex_error_info": info} if info is not None else {},
        provider_error=ProviderErrorInfo(
            status_code=status,
            retry_after=retry_after,
            body=body if body is not None else None,
            message=message,
        ),
    )


def rejected(exc: RpcError, stderr: list[str]) -> AsmError:
    """The app-server refused one of our requests: a bad request is ours, the rest its."""
    return error(
        "invalid_input" if exc.code in (-32600, -32602) else "provider_error",
        f"codex app-server rejected {exc.method}: {exc.message}",
        details={"rpc_code": exc.code, "stderr": stderr},
    )
