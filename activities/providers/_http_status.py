"""The one map from an HTTP status a provider answered with to a taxonomy code.

Every provider classifies a status through :func:`code_for_status` (the Anthropic SDK's
status classes, the status Codex forwards in ``codexErrorInfo``, Claude Code's
``api_error_status``), so a 402 means the same thing whichever provider sent it.

Retryable answers are the ones a later attempt can get past: a timeout (408, 499, 504), a
transient conflict (409: the API's lock conflict, which the SDKs themselves retry), a rate
limit (429) and a server failure (5xx). A 501 is not: the endpoint will not learn the
method by the next attempt. Every other 4xx is the request's own fault (``invalid_input``),
except the credential (401, 403) and the bill (402).
"""

from __future__ import annotations

import re
from typing import Final

from agent_session_manager.core.errors import ErrorCode

_SPECIFIC: Final[dict[int, ErrorCode]] = {
    401: "provider_authentication_failed",
    402: "provider_quota_exceeded",
    403: "provider_authentication_failed",
    408: "provider_timeout",
    409: "provider_unavailable",
    429: "provider_rate_limited",
    # nginx's "client closed request": a proxy between us and the API gave up waiting.
    499: "provider_timeout",
    501: "provider_error",
    504: "provider_timeout",
}


def code_for_status(status: int) -> ErrorCode:
    """The taxonomy code for a provider's HTTP ``status``.

    A status below 400 is no failure of its own (an error event inside a 200 stream, say): it
    says nothing, so the answer is the generic ``provider_error``.
    """
    if status in _SPECIFIC:
        return _SPECIFIC[status]
    if 400 <= status < 500:
        return "invalid_input"
    if 500 <= status < 600:
        return "provider_unavailable"
    return "provider_error"


#: Where a web page announces itself, looked for near the start only (a page can be megabytes).
_PAGE = re.compile(r"<(?:!doctype\s+html|html|head|body)\b", re.IGNORECASE)
_PAGE_WINDOW = 4096


def page_message(status: int | None, text: str, kind: str = "HTML") -> str | None:
    """A short message for an answer that is a web page (a gateway's, not the API's error).

    ``None`` when ``text`` is no page. Such a page's text is no message (it can be megabytes of
    markup and can echo the request's headers); what it is, is: its status and its size, and
    that something between the worker and the API failed. The page's start stays in the
    error's (capped, redacted) body.
    """
    if not _PAGE.search(text[:_PAGE_WINDOW]):
        return None
    where = f"HTTP {status}" if status is not None else "An answer"
    return (
        f"{where} with a {kind} page of {len(text.encode('utf-8', 'replace'))} bytes instead of "
        "an API error: something between the worker and the API failed"
    )
