"""Every way the Messages API (or the road to it) fails, mapped to the taxonomy at the adapter."""

from __future__ import annotations

import inspect
import json
import socket
import time
from email.utils import formatdate
from typing import Any, TypeVar

import anthropic
import httpx2
import pytest

from agent_session_manager.activities.providers.anthropic import AnthropicProvider
from agent_session_manager.activities.providers.anthropic._errors import (
    EXCEPTION_CODES,
    code_for,
    map_exception,
    parse_retry_after,
)
from agent_session_manager.core.errors import (
    CODES,
    MAX_ERROR_BODY_BYTES,
    MAX_MESSAGE_BYTES,
    RETRYABLE_CODES,
    AsmError,
)
from agent_session_manager.core.events import EventType
from tests.fakes.anthropic_server import (
    AnthropicFake,
    Drop,
    HttpError,
    Reply,
    Stall,
    StreamError,
    Text,
    html_error_page,
)
from tests.providers.anthropic_support import (  # the fixtures "fake" and "sink"
    API_KEY,
    RecordingSink,
    anthropic_fake,  # noqa: F401
    make_request,
    recording_sink,  # noqa: F401
)

# --- the map is complete ------------------------------------------------------------------------


def _exported_exceptions(module: Any, base: type[BaseException]) -> list[type[BaseException]]:
    found = {
        obj
        for name in dir(module)
        if not name.startswith("_")
        and inspect.isclass(obj := getattr(module, name))
        and issubclass(obj, base)
    }
    return sorted(found, key=lambda c: c.__name__)


_E = TypeVar("_E", bound=BaseException)


def _all_subclasses(cls: type[_E]) -> list[type[_E]]:
    out: list[type[_E]] = []
    for sub in cls.__subclasses__():
        out.extend([sub, *_all_subclasses(sub)])
    return out


def _class_status(cls: type[anthropic.APIStatusError]) -> int:
    """The status a status-error class stands for (a class-level int), else 500."""
    status = getattr(cls, "status_code", None)
    return status if isinstance(status, int) else 500


def test_every_exported_sdk_exception_class_is_mapped() -> None:
    exported = _exported_exceptions(anthropic, anthropic.AnthropicError)
    assert anthropic.APIStatusError in exported and len(exported) > 30
    # APIStatusError itself is classified by the body's error.type and the status code.
    unmapped = [
        c.__name__
        for c in exported
        if c not in EXCEPTION_CODES and c is not anthropic.APIStatusError
    ]
    assert unmapped == [], f"anthropic exception classes without a taxonomy code: {unmapped}"
    assert set(EXCEPTION_CODES.values()) <= set(CODES)


def test_every_exported_transport_exception_class_resolves() -> None:
    for cls in _exported_exceptions(httpx2, httpx2.HTTPError):
        assert any(base in EXCEPTION_CODES for base in cls.__mro__), cls


def _status_error(cls: type[anthropic.APIStatusError], status: int, error_type: str) -> Any:
    request = httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
    body = {"type": "error", "error": {"type": error_type, "message": "m"}, "request_id": "req_1"}
    response = httpx2.Response(
        status, request=request, json=body, headers={"request-id": "req_1", "retry-after": "2"}
    )
    return cls("m", response=response, body=body)


def test_every_status_error_class_the_sdk_defines_maps_with_its_status() -> None:
    # Includes the error_code subclasses the SDK does not export: they inherit a mapping.
    classes: list[type[anthropic.APIStatusError]] = [
        anthropic.APIStatusError,
        *_all_subclasses(anthropic.APIStatusError),
    ]
    assert len(classes) > 50
    for cls in classes:
        status = _class_status(cls)
        err = map_exception(_status_error(cls, status, "api_error"))
        assert err.code in CODES, cls
        assert err.category == "provider" or err.code == "invalid_input", cls
        assert err.provider_error is not None
        assert err.provider_error.status_code == status
        assert err.provider_error.request_id == "req_1"
        assert err.provider_error.retry_after == 2.0


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (anthropic.RateLimitError, "provider_rate_limited"),
        (anthropic.EnforcedSpendLimitReachedError, "provider_quota_exceeded"),
        (anthropic.OverloadedError, "provider_unavailable"),
        (anthropic.ServiceUnavailableError, "provider_unavailable"),
        (anthropic.InternalServerError, "provider_unavailable"),
        (anthropic.GatewayTimeoutError, "provider_timeout"),
        (anthropic.AuthenticationError, "provider_authentication_failed"),
        (anthropic.PermissionDeniedError, "provider_authentication_failed"),
        (anthropic.BadRequestError, "invalid_input"),
        (anthropic.NotFoundError, "invalid_input"),
        (anthropic.ContentTooLargeError, "invalid_input"),
    ],
)
def test_status_error_classes_map_as_the_issue_says(
    cls: type[anthropic.APIStatusError], code: str
) -> None:
    status = _class_status(cls)
    assert code_for(_status_error(cls, status, "whatever")) == code


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx2.ReadTimeout("stalled"), "provider_timeout"),
        (httpx2.ConnectError("refused"), "provider_timeout"),
        (httpx2.RemoteProtocolError("cut"), "provider_timeout"),
        (httpx2.ReadError("reset"), "provider_timeout"),
        (anthropic.CredentialsError("no creds"), "provider_authentication_failed"),
        (anthropic.RetryableError("again"), "provider_unavailable"),
        (anthropic.AnthropicError("?"), "provider_error"),
    ],
)
def test_non_status_exceptions_map(exc: BaseException, code: str) -> None:
    err = map_exception(exc)
    assert err.code == code
    assert err.retryable is (code in RETRYABLE_CODES)


# --- retry-after ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "1"}, 1.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after": " 7 "}, 7.0),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "x", "retry-after": "9"}, 9.0),
        ({}, None),
    ],
)
def test_parse_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after({"retry-after": formatdate(now + 30, usegmt=True)}, now=now) == 30.0
    assert parse_retry_after({"retry-after": formatdate(now - 30, usegmt=True)}, now=now) == 0.0


# --- over the wire ------------------------------------------------------------------------------


async def _fail(fake: AnthropicFake, sink: RecordingSink, **options: Any) -> AsmError:
    with pytest.raises(AsmError) as caught:
        await AnthropicProvider().stream(make_request(fake.base_url, options=options), sink)
    return caught.value


async def test_429_with_retry_after_is_rate_limited_and_retryable(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(
        HttpError(
            429,
            message="Number of request tokens has exceeded your per-minute rate limit",
            retry_after=1,
            headers={"anthropic-ratelimit-requests-remaining": "0"},
        )
    )
    err = await _fail(fake, sink)
    assert err.code == "provider_rate_limited"
    assert err.retryable is True
    pe = err.provider_error
    assert pe is not None
    assert pe.status_code == 429
    assert pe.retry_after == 1.0
    assert pe.request_id == fake.requests[-1].request_id
    assert pe.message == "Number of request tokens has exceeded your per-minute rate limit"
    assert pe.headers["retry-after"] == "1"
    assert pe.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert pe.body["error"]["type"] == "rate_limit_error"
    assert isinstance(err.__cause__, anthropic.RateLimitError)
    assert err.details["error_type"] == "rate_limit_error"
    assert sink.events == []


async def test_retry_after_as_http_date(fake: AnthropicFake, sink: RecordingSink) -> None:
    fake.script(HttpError(429, retry_after=formatdate(time.time() + 30, usegmt=True)))
    err = await _fail(fake, sink)
    assert err.provider_error is not None and err.provider_error.retry_after is not None
    assert 25.0 <= err.provider_error.retry_after <= 31.0


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (529, "provider_unavailable", True),
        (500, "provider_unavailable", True),
        (502, "provider_unavailable", True),
        (503, "provider_unavailable", True),
        (504, "provider_timeout", True),
        (408, "provider_timeout", True),
        (401, "provider_authentication_failed", False),
        (403, "provider_authentication_failed", False),
        (400, "invalid_input", False),
        (404, "invalid_input", False),
        (413, "invalid_input", False),
        (422, "invalid_input", False),
        (402, "provider_quota_exceeded", False),
        (418, "invalid_input", False),
    ],
)
async def test_http_status_maps_to_taxonomy(
    fake: AnthropicFake, sink: RecordingSink, status: int, code: str, retryable: bool
) -> None:
    fake.script(HttpError(status, message=f"failure {status}"))
    err = await _fail(fake, sink)
    assert (err.code, err.retryable) == (code, retryable)
    assert err.provider_error is not None
    assert err.provider_error.status_code == status
    assert err.provider_error.request_id == fake.requests[-1].request_id
    assert err.provider_error.message == f"failure {status}"
    assert isinstance(err.__cause__, anthropic.APIStatusError)


async def test_proxy_502_with_a_non_json_body_is_unavailable(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(HttpError(502, body="<html>Bad Gateway</html>"))
    err = await _fail(fake, sink)
    assert err.code == "provider_unavailable"
    assert err.provider_error is not None and err.provider_error.status_code == 502


async def test_a_5mb_html_503_is_unavailable_with_a_short_message_and_a_capped_body(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(HttpError(503, body=html_error_page(5 * 1024 * 1024), content_type="text/html"))
    err = await _fail(fake, sink)
    assert (err.code, err.retryable) == ("provider_unavailable", True)
    assert err.provider_error is not None and err.provider_error.status_code == 503
    assert "text/html page of" in err.message
    assert len(err.message.encode()) <= MAX_MESSAGE_BYTES
    assert isinstance(err.provider_error.body, str)
    assert err.provider_error.body.startswith("<html>")
    assert len(err.provider_error.body.encode()) <= MAX_ERROR_BODY_BYTES


async def test_spend_limit_429_is_quota_not_rate_limit(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "spend limit reached",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
    }
    fake.script(HttpError(429, body=body, retry_after=60))
    err = await _fail(fake, sink)
    assert isinstance(err.__cause__, anthropic.EnforcedSpendLimitReachedError)
    assert (err.code, err.retryable) == ("provider_quota_exceeded", False)


@pytest.mark.parametrize(
    ("error_type", "code", "retryable"),
    [
        ("overloaded_error", "provider_unavailable", True),
        ("api_error", "provider_unavailable", True),
        ("rate_limit_error", "provider_rate_limited", True),
        ("invalid_request_error", "invalid_input", False),
        ("brand_new_error", "provider_error", False),
    ],
)
async def test_error_event_mid_stream_is_classified_by_its_type(
    fake: AnthropicFake, sink: RecordingSink, error_type: str, code: str, retryable: bool
) -> None:
    fake.script(Reply([Text("Partial ", "answer")], interrupt=StreamError(error_type, "boom")))
    err = await _fail(fake, sink)
    assert (err.code, err.retryable) == (code, retryable)
    pe = err.provider_error
    assert pe is not None
    assert pe.status_code is None  # the stream's 200 is not the error's status
    assert pe.request_id == fake.requests[-1].request_id
    assert pe.message == "boom"
    assert err.details["error_type"] == error_type
    # What streamed before the error was emitted; the message never completed.
    assert [d["text"] for d in sink.of(EventType.MESSAGE_STREAMED)] == ["Partial ", "answer"]
    assert EventType.MESSAGE_RECEIVED not in sink.types


async def test_connection_refused_is_provider_timeout(sink: RecordingSink) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    with pytest.raises(AsmError) as caught:
        await AnthropicProvider().stream(make_request(base_url), sink)
    assert (caught.value.code, caught.value.retryable) == ("provider_timeout", True)
    assert isinstance(caught.value.__cause__, anthropic.APIConnectionError)


async def test_connection_dropped_before_response_is_provider_timeout(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Drop())
    err = await _fail(fake, sink)
    assert (err.code, err.retryable) == ("provider_timeout", True)


async def test_connection_dropped_mid_stream_is_provider_timeout(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Reply([Text("a", "b", "c")], interrupt=Drop(after_events=4)))
    err = await _fail(fake, sink)
    assert (err.code, err.retryable) == ("provider_timeout", True)
    assert isinstance(err.__cause__, httpx2.TransportError)
    assert [d["text"] for d in sink.of(EventType.MESSAGE_STREAMED)] == ["a"]


async def test_stream_ending_before_message_stop_is_provider_timeout(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Reply([Text("a", "b")], interrupt=Drop(clean=True)))
    err = await _fail(fake, sink)
    assert (err.code, err.retryable) == ("provider_timeout", True)
    assert EventType.MESSAGE_RECEIVED not in sink.types


async def test_stalled_stream_is_provider_timeout_and_closes_the_connection(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Reply([Text("a", "b")], interrupt=Stall(after_events=4)))
    started = time.monotonic()
    err = await _fail(fake, sink, read_timeout=0.3)
    assert (err.code, err.retryable) == ("provider_timeout", True)
    assert isinstance(err.__cause__, httpx2.ReadTimeout)
    assert time.monotonic() - started < 5
    disconnect = await fake.wait_for_disconnect(timeout=1.0)
    assert disconnect.events_sent == 4


async def test_no_response_headers_is_provider_timeout(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Stall())
    err = await _fail(fake, sink, read_timeout=0.3)
    assert (err.code, err.retryable) == ("provider_timeout", True)
    assert isinstance(err.__cause__, anthropic.APITimeoutError)


async def test_wrong_api_key_is_authentication_failed_and_never_leaks() -> None:
    sink = RecordingSink()
    async with AnthropicFake(api_key="sk-ant-the-right-one") as fake:
        err = await _fail(fake, sink)
    assert (err.code, err.retryable) == ("provider_authentication_failed", False)
    assert API_KEY not in json.dumps(err.to_dict())
    assert API_KEY not in str(err)
    assert API_KEY not in repr(err)
