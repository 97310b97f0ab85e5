"""One HTTP-status → taxonomy map, and every provider classifies a status through it."""

from __future__ import annotations

import anthropic
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_session_manager.activities.providers._http_status import code_for_status, page_message
from agent_session_manager.activities.providers.anthropic._errors import map_exception
from agent_session_manager.activities.providers.claude_code._errors import classify_result
from agent_session_manager.activities.providers.codex._errors import classify_turn_error
from agent_session_manager.core.errors import CODES, RETRYABLE_CODES

statuses = st.integers(min_value=100, max_value=599)

#: Statuses a later attempt can get past although they are 4xx, and the 5xx it cannot.
RETRYABLE_4XX = {408, 409, 429, 499}
FINAL_5XX = {501}


@given(statuses)
def test_every_status_maps_to_a_provider_code_or_invalid_input(status: int) -> None:
    code = code_for_status(status)
    assert code in CODES
    assert CODES[code][0] == "provider" or code == "invalid_input"


@given(statuses)
def test_a_status_is_retryable_exactly_when_a_later_attempt_can_get_past_it(status: int) -> None:
    retryable = code_for_status(status) in RETRYABLE_CODES
    if status < 400:
        assert not retryable
    elif status < 500:
        assert retryable is (status in RETRYABLE_4XX)
    else:
        assert retryable is (status not in FINAL_5XX)


@given(st.integers(min_value=100, max_value=399))
def test_a_status_below_400_says_nothing_more_than_provider_error(status: int) -> None:
    assert code_for_status(status) == "provider_error"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "invalid_input"),
        (401, "provider_authentication_failed"),
        (402, "provider_quota_exceeded"),
        (403, "provider_authentication_failed"),
        (404, "invalid_input"),
        (408, "provider_timeout"),
        (409, "provider_unavailable"),
        (413, "invalid_input"),
        (418, "invalid_input"),
        (422, "invalid_input"),
        (429, "provider_rate_limited"),
        (499, "provider_timeout"),
        (500, "provider_unavailable"),
        (501, "provider_error"),
        (502, "provider_unavailable"),
        (503, "provider_unavailable"),
        (504, "provider_timeout"),
        (529, "provider_unavailable"),
    ],
)
def test_the_statuses_providers_send(status: int, code: str) -> None:
    assert code_for_status(status) == code


@given(statuses)
def test_codex_classifies_a_forwarded_status_by_the_shared_map(status: int) -> None:
    turn_error = {"message": "x", "codexErrorInfo": {"other": {"httpStatusCode": status}}}
    assert classify_turn_error(turn_error).code == code_for_status(status)


@given(statuses)
def test_claude_code_classifies_an_api_error_status_by_the_shared_map(status: int) -> None:
    assert classify_result(status=status, error_kind=None, message="x").code == (
        code_for_status(status)
    )


@given(st.integers(min_value=400, max_value=599))
def test_anthropic_classifies_a_status_without_a_class_by_the_shared_map(status: int) -> None:
    request = httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
    body = {"type": "error", "error": {"type": "a_type_we_do_not_know", "message": "m"}}
    response = httpx2.Response(status, request=request, json=body)
    exc = anthropic.APIStatusError("m", response=response, body=body)
    assert map_exception(exc).code == code_for_status(status)


PAGE = "<!DOCTYPE html><html><body>" + "<div>é gateway</div>" * 300_000 + "</body></html>"


def test_a_web_page_is_summed_up_by_its_status_and_size_not_quoted() -> None:
    message = page_message(503, PAGE)
    assert message is not None
    assert message.startswith(f"HTTP 503 with a HTML page of {len(PAGE.encode())} bytes")
    assert "<div>" not in message


@pytest.mark.parametrize(
    "text",
    ["unexpected status 503 Service Unavailable: " + PAGE[:500], "<HTML><HEAD>502</HEAD>"],
)
def test_a_page_is_recognised_behind_a_prefix_and_in_any_case(text: str) -> None:
    assert page_message(None, text) is not None


@pytest.mark.parametrize(
    "text", ["Overloaded", '{"error": {"type": "api_error", "message": "Internal"}}', ""]
)
def test_an_api_error_is_no_page(text: str) -> None:
    assert page_message(500, text) is None
