"""The ``anthropic`` provider's failures as taxonomy errors.

Every failure leaves as a :class:`core.errors.AsmError` raised ``from`` the SDK's (or the
transport's) exception, carrying the provider's status code, request id, ``retry-after`` and
message in ``provider_error``: see :func:`map_exception` and :data:`EXCEPTION_CODES`, which a
test checks against every exception class the SDK exports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Final

import anthropic
import httpx2

from agent_session_manager.activities.providers._http_status import (
    code_for_status,
    page_message,
)
from agent_session_manager.core.errors import AsmError, ErrorCode, ProviderErrorInfo, error

PROVIDER_NAME: Final = "anthropic"

#: Response headers worth keeping on a failure.
_KEPT_HEADERS: Final = ("request-id", "retry-after", "retry-after-ms", "x-should-retry")

#: Taxonomy code per SDK exception class. Lookup walks the exception's MRO, so the many
#: ``error_code`` subclasses the SDK does not export inherit their parent's entry; a test
#: checks that every exception class ``anthropic`` exports has its own entry.
#: ``APIStatusError`` itself (a status with no class of its own, or an ``event: error`` inside a
#: 200 stream) is classified by the body's ``error.type``, then by status: :func:`_status_code`.
EXCEPTION_CODES: Final[dict[type[BaseException], ErrorCode]] = {
    # transport
    anthropic.APITimeoutError: "provider_timeout",
    anthropic.APIConnectionError: "provider_timeout",
    # the status classes: the code is the shared status map's, for the status each stands for
    anthropic.BadRequestError: code_for_status(400),
    anthropic.AuthenticationError: code_for_status(401),
    anthropic.PaymentRequiredError: code_for_status(402),
    anthropic.PermissionDeniedError: code_for_status(403),
    anthropic.NotFoundError: code_for_status(404),
    anthropic.RequestTimeoutError: code_for_status(408),
    anthropic.ConflictError: code_for_status(409),
    anthropic.PreconditionFailedError: code_for_status(412),
    anthropic.ContentTooLargeError: code_for_status(413),
    anthropic.UnprocessableEntityError: code_for_status(422),
    anthropic.RateLimitError: code_for_status(429),
    anthropic.RequestHeaderFieldsTooLargeError: code_for_status(431),
    anthropic.ClientClosedRequestError: code_for_status(499),
    anthropic.InternalServerError: code_for_status(500),
    anthropic.HTTPNotImplementedError: code_for_status(501),
    anthropic.ServiceUnavailableError: code_for_status(503),
    anthropic.GatewayTimeoutError: code_for_status(504),
    anthropic.OverloadedError: code_for_status(529),
    # error_code subclasses the SDK exports: spend and billing limits do not lift by retrying
    anthropic.ContractSpendLimitReachedError: "provider_quota_exceeded",
    anthropic.EnforcedSpendLimitReachedError: "provider_quota_exceeded",
    anthropic.RampLimitExceededError: "provider_rate_limited",
    anthropic.LinkedOrganizationBillingUnavailableError: "provider_quota_exceeded",
    anthropic.LinkedOrganizationSpendLimitReachedError: "provider_quota_exceeded",
    anthropic.OrganizationOnHoldError: "provider_quota_exceeded",
    anthropic.CMEKKeyDisabledError: "provider_error",
    anthropic.CMEKKeyNetworkBlockedError: "provider_error",
    anthropic.CMEKKeyUnreachableError: "provider_unavailable",
    anthropic.CMEKContextUnavailableError: "provider_unavailable",
    anthropic.ClaudeCodeKeyCreatorNotMemberError: "provider_authentication_failed",
    anthropic.ClaudeCodeVersionTooOldError: "invalid_input",
    anthropic.OrganizationTypeNotSupportedError: "invalid_input",
    anthropic.ParentOrganizationRequiredError: "invalid_input",
    anthropic.RequestBodyEncodingInvalidError: "invalid_input",
    anthropic.RequestBodyEncodingUnsupportedError: "invalid_input",
    anthropic.RequestBodyTooLargeAfterDecodingError: "invalid_input",
    anthropic.SandboxEgressRestrictedError: "provider_authentication_failed",
    # the workspace has Human Review off: use another workspace; retrying cannot help
    anthropic.WorkspaceHumanReviewDisabledError: "invalid_input",
    # the rest of the SDK's tree
    anthropic.APIResponseValidationError: "provider_error",
    anthropic.APIWebhookValidationError: "provider_error",
    anthropic.CredentialsError: "provider_authentication_failed",
    anthropic.IdentityTokenFileError: "provider_authentication_failed",
    anthropic.WorkloadIdentityError: "provider_authentication_failed",
    # raised by SDK middleware to ask for a retry; with max_retries=0 it reaches us
    anthropic.RetryableError: "provider_unavailable",
    anthropic.APIError: "provider_error",
    anthropic.AnthropicError: "provider_error",
    # The transport's own exceptions escape the SDK while a stream is being read: a stalled
    # stream is httpx2.ReadTimeout, a connection cut mid-body httpx2.RemoteProtocolError.
    httpx2.TimeoutException: "provider_timeout",
    httpx2.TransportError: "provider_timeout",
    httpx2.DecodingError: "provider_error",
    httpx2.TooManyRedirects: "provider_error",
    httpx2.HTTPStatusError: "provider_error",
    httpx2.HTTPError: "provider_error",
}

#: Taxonomy code per the API's ``error.type`` (for ``event: error`` mid-stream).
ERROR_TYPE_CODES: Final[dict[str, ErrorCode]] = {
    "invalid_request_error": "invalid_input",
    "authentication_error": "provider_authentication_failed",
    "permission_error": "provider_authentication_failed",
    "billing_error": "provider_quota_exceeded",
    "not_found_error": "invalid_input",
    "request_too_large": "invalid_input",
    "rate_limit_error": "provider_rate_limited",
    "timeout_error": "provider_timeout",
    "api_error": "provider_unavailable",
    "overloaded_error": "provider_unavailable",
    "conflict_error": "provider_unavailable",
}


def _status_code(exc: anthropic.APIStatusError) -> ErrorCode:
    by_type = ERROR_TYPE_CODES.get(str(getattr(exc, "type", None) or ""))
    # An ``event: error`` of a type we do not know arrives on a 200: code_for_status says
    # provider_error for it.
    return by_type if by_type is not None else code_for_status(exc.status_code)


def code_for(exc: BaseException) -> ErrorCode:
    """The taxonomy code for an SDK or transport exception."""
    for cls in type(exc).__mro__:
        if cls is anthropic.APIStatusError:
            assert isinstance(exc, anthropic.APIStatusError)
            return _status_code(exc)
        code = EXCEPTION_CODES.get(cls)
        if code is not None:
            return code
    return "provider_error"


def map_exception(exc: BaseException) -> AsmError:
    """The taxonomy error for ``exc`` (to be raised ``from exc``)."""
    code = code_for(exc)
    info = provider_error_info(exc)
    details: dict[str, Any] = {"provider": PROVIDER_NAME, "exception": type(exc).__name__}
    error_type = getattr(exc, "type", None)
    if isinstance(exc, anthropic.APIStatusError) and error_type:
        details["error_type"] = error_type
    message = info.message or type(exc).__name__
    return error(code, f"anthropic: {message}", details=details, provider_error=info)


def provider_error_info(exc: BaseException) -> ProviderErrorInfo:
    """Status, request id, ``retry-after`` (seconds), kept headers, body and message."""
    if isinstance(exc, anthropic.APIStatusError):
        headers = exc.response.headers
        kept = {k: headers[k] for k in _KEPT_HEADERS if k in headers}
        kept.update({k: v for k, v in headers.items() if k.startswith("anthropic-ratelimit-")})
        mid_stream = exc.status_code < 400
        request_id = exc.request_id or _body_field(exc.body, "request_id")
        message = exc.api_message or exc.message
        if isinstance(exc.body, str) and not mid_stream:
            # Not the API's JSON error: a proxy's or gateway's page (HTML, megabytes maybe).
            kind = headers.get("content-type", "").split(";")[0].strip() or "HTML"
            message = page_message(exc.status_code, exc.body, kind) or message
        return ProviderErrorInfo(
            # An ``event: error`` arrives on a 200 response: that 200 is not the error's status.
            status_code=None if mid_stream else exc.status_code,
            request_id=request_id,
            retry_after=parse_retry_after(headers),
            headers=kept,
            body=exc.body,
            message=message,
        )
    if isinstance(exc, anthropic.APIError):
        return ProviderErrorInfo(message=exc.message, body=exc.body)
    return ProviderErrorInfo(message=str(exc) or type(exc).__name__)


def _body_field(body: object, key: str) -> str | None:
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, or ``retry-after`` (seconds or an HTTP-date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
        except ValueError:
            pass
        else:
            if math.isfinite(value) and value >= 0:
                return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(seconds, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
