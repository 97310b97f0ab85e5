"""The Codex CLI's failures as taxonomy errors.

The turn's ``codexErrorInfo`` (and the upstream HTTP status it forwards) classifies the
failure: 429 → ``provider_rate_limited``; 5xx/529 and dropped streams →
``provider_unavailable``; 401/403 → ``provider_authentication_failed``; 400 →
``invalid_input``; idle stream timeouts → ``provider_timeout``; usage/budget limits →
``provider_quota_exceeded``. The CLI's own retries are off, so every retry is Temporal's.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from agent_session_manager.activities.providers.codex._transport import RpcError
from agent_session_manager.core.errors import AsmError, ErrorCode, ProviderErrorInfo, error

_STATUS_CODES: dict[int, ErrorCode] = {
    400: "invalid_input",
    401: "provider_authentication_failed",
    403: "provider_authentication_failed",
    404: "invalid_input",
    408: "provider_timeout",
    413: "invalid_input",
    422: "invalid_input",
    429: "provider_rate_limited",
    504: "provider_timeout",
}

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


def _status_code(code: int) -> ErrorCode:
    if code in _STATUS_CODES:
        return _STATUS_CODES[code]
    if code >= 500:
        return "provider_unavailable"  # 5xx and Anthropic-style 529
    return "provider_error"


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
    if isinstance(body_error, dict) and body_error.get("message"):
        human = str(body_error["message"])

    code: ErrorCode
    if status is not None:
        code = _status_code(status)
    elif variant in _INFO_CODES:
        code = _INFO_CODES[variant]
    elif isinstance(body_error, dict) and (
        body_error.get("type") in _BODY_TYPES or body_error.get("code") in _BODY_TYPES
    ):
        code = (
            _BODY_TYPES.get(str(body_error.get("type"))) or _BODY_TYPES[str(body_error.get("code"))]
        )
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
