"""Errors as JSON: ``{"error": {code, category, message, retryable, details}}`` with the HTTP
status the taxonomy code means (:data:`HTTP_STATUS` covers every code of ``core.errors``; a
test checks it stays complete).

Statuses answer "whose move is it": 4xx the caller must change the request (or wait, 429),
5xx the deployment is unwell. A provider failure is 502/504 (an upstream behind us), never a
401/403: the caller's key is fine, the deployment's provider credentials are not.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent_session_manager.core.errors import AsmError, ErrorCode, error

log = logging.getLogger("asm.gateway")

HTTP_STATUS: dict[ErrorCode, int] = {
    # validation: the request is wrong
    "validation_error": 422,
    "invalid_input": 400,
    "missing_required_field": 422,
    "invalid_format": 400,
    # state: not now, not in this state
    "invalid_status": 409,
    "invalid_transition": 409,
    "invalid_event_type": 400,
    "invalid_capability_type": 400,
    "missing_required_capability": 422,
    "stream_closed": 503,
    "context_mismatch": 409,
    "invalid_cursor": 400,
    "session_mismatch": 409,
    "run_mismatch": 409,
    # resource
    "not_found": 404,
    "session_not_found": 404,
    "run_not_found": 404,
    "capability_not_found": 404,
    "already_exists": 409,
    "duplicate_capability": 409,
    "session_already_exists": 409,
    # provider: an upstream of ours failed
    "provider_error": 502,
    "provider_unavailable": 502,
    "provider_rate_limited": 503,
    "provider_timeout": 504,
    "provider_authentication_failed": 502,
    "provider_quota_exceeded": 502,
    # storage
    "storage_error": 503,
    "storage_connection_failed": 503,
    "storage_write_failed": 503,
    "storage_read_failed": 503,
    "storage_full": 507,
    # runtime
    "timeout": 504,
    "cancelled": 409,
    "internal_error": 500,
    "unknown_error": 500,
    "policy_violation": 403,
    "temporal_unavailable": 503,
    # concurrency
    "max_sessions_exceeded": 429,
    "max_runs_exceeded": 429,
    "capability_not_supported": 422,
    "invalid_operation": 409,
    # tool
    "tool_error": 502,
    "tool_not_found": 404,
    "tool_execution_failed": 502,
    "tool_permission_denied": 403,
    "tool_call_not_found": 404,
    "tool_result_already_submitted": 409,
    "max_turns_exceeded": 409,
    # approvals: the decision came too late, or names another action
    "approval_already_resolved": 409,
    "approval_mismatch": 409,
    "approval_not_found": 404,
    # budgets: the spending limit is reached (a payment matter, not a retry-later one)
    "budget_exceeded": 402,
}


class GatewayError(Exception):
    """An :class:`AsmError` answered with a status of its own (401, 413, 429 …) and headers."""

    def __init__(self, err: AsmError, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(err.message)
        self.error = err
        self.status = status
        self.headers = headers or {}


def unauthenticated(message: str) -> GatewayError:
    """401: no key, an unknown key or a revoked one (indistinguishable on purpose)."""
    return GatewayError(
        error("policy_violation", message, details={"reason": "unauthenticated"}),
        401,
        {"WWW-Authenticate": 'Bearer realm="asm"'},
    )


def body(err: AsmError) -> dict[str, Any]:
    return {"error": err.to_dict()}


def response(
    err: AsmError, status: int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        body(err), status_code=status or HTTP_STATUS.get(err.code, 500), headers=headers
    )


def _validation(exc: RequestValidationError) -> AsmError:
    # Pydantic echoes the offending input: a megabyte body would come back whole (and a key
    # pasted into the wrong field would be reflected). Keep where and why, drop what.
    problems = [
        {"loc": [str(p) for p in e.get("loc", ())][:8], "msg": str(e.get("msg", ""))[:300]}
        for e in exc.errors()[:20]
    ]
    where = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems[:3])
    return error(
        "validation_error",
        f"the request is not valid ({where}); see /openapi.json for the schema",
        details={"problems": problems},
    )


_HTTP_CODES: dict[int, ErrorCode] = {
    404: "not_found",
    405: "invalid_operation",
    413: "invalid_input",
    415: "invalid_format",
}


def install(app: FastAPI) -> None:
    """Every failure leaves as JSON with a taxonomy code; nothing as an HTML page or a trace."""

    @app.exception_handler(AsmError)
    async def _asm(_request: Request, exc: AsmError) -> JSONResponse:
        if HTTP_STATUS.get(exc.code, 500) >= 500:
            log.warning("request failed: %s: %s", exc.code, exc.message)
        return response(exc)

    @app.exception_handler(GatewayError)
    async def _gateway(_request: Request, exc: GatewayError) -> JSONResponse:
        return response(exc.error, exc.status, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return response(_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(
            exc.status_code, "invalid_input" if exc.status_code < 500 else "internal_error"
        )
        message = {
            404: "no such endpoint: see /openapi.json",
            405: "method not allowed on this endpoint: see /openapi.json",
        }.get(exc.status_code, str(exc.detail))
        return response(error(code, message), exc.status_code, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in the gateway")
        return response(
            error("internal_error", "the gateway failed unexpectedly: its log has the trace"),
            500,
        )
