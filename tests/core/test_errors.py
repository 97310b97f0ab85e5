"""The error taxonomy: codes, categories, retry bits, subclasses and their dict form."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError as PydanticValidationError

from agent_session_manager.core.errors import (
    CODES,
    MAX_DETAILS_BYTES,
    MAX_ERROR_BODY_BYTES,
    MAX_MESSAGE_BYTES,
    NON_RETRYABLE_CODES,
    RETRYABLE_CODES,
    AsmError,
    ConcurrencyError,
    ProviderError,
    ProviderErrorInfo,
    ResourceError,
    RuntimeFailure,
    StateError,
    StorageError,
    ToolError,
    ValidationError,
    error,
    is_retryable,
)
from agent_session_manager.core.scrub import json_size

SUBCLASSES: dict[str, type[AsmError]] = {
    "validation": ValidationError,
    "state": StateError,
    "resource": ResourceError,
    "provider": ProviderError,
    "storage": StorageError,
    "runtime": RuntimeFailure,
    "concurrency": ConcurrencyError,
    "tool": ToolError,
}


def test_every_code_has_a_known_category_and_a_default_message() -> None:
    for code, (category, message) in CODES.items():
        assert category in SUBCLASSES, code
        assert message.strip(), code


def test_retryable_codes_are_exactly_the_transient_ones() -> None:
    assert (
        frozenset(
            {
                "provider_timeout",
                "provider_rate_limited",
                "provider_unavailable",
                "storage_connection_failed",
                "storage_full",
                "timeout",
            }
        )
        == RETRYABLE_CODES
    )


def test_non_retryable_codes_are_every_other_code() -> None:
    assert NON_RETRYABLE_CODES == frozenset(CODES) - RETRYABLE_CODES
    assert not NON_RETRYABLE_CODES & RETRYABLE_CODES


@pytest.mark.parametrize("code", sorted(CODES))
def test_error_builds_the_subclass_of_the_code_category_with_default_retry_bit(code: str) -> None:
    err = error(code)
    category, message = CODES[code]
    assert type(err) is SUBCLASSES[category]
    assert err.category == category
    assert err.message == message
    assert err.retryable is (code in RETRYABLE_CODES)
    assert is_retryable(code) is err.retryable


def test_base_constructor_yields_the_category_subclass() -> None:
    err = AsmError("session_not_found")
    assert type(err) is ResourceError
    assert isinstance(err, AsmError)


def test_unknown_code_is_a_programmer_error() -> None:
    with pytest.raises(ValueError, match="unknown error code"):
        error("no_such_code")
    with pytest.raises(ValueError, match="unknown error code"):
        AsmError("no_such_code")


def test_subclass_refuses_a_code_of_another_category() -> None:
    with pytest.raises(ValueError, match="StateError is for state errors"):
        StateError("not_found")


def test_subclass_accepts_its_own_codes() -> None:
    err = ProviderError("provider_unavailable", "down", retryable=False)
    assert err.code == "provider_unavailable"
    assert err.retryable is False


def test_explicit_message_details_and_retry_override_are_kept() -> None:
    err = error("internal_error", "boom", details={"x": 1}, retryable=True)
    assert (err.message, err.details, err.retryable) == ("boom", {"x": 1}, True)


def test_details_are_copied_not_shared_with_the_caller() -> None:
    details = {"x": 1}
    err = error("invalid_input", details=details)
    details["x"] = 2
    assert err.details == {"x": 1}


def test_str_shows_code_and_message() -> None:
    assert str(error("timeout", "too slow")) == "[timeout] too slow"


@pytest.mark.parametrize("code", sorted(CODES))
def test_to_dict_from_dict_round_trip_keeps_everything(code: str) -> None:
    err = error(
        code,
        "msg",
        details={"k": [1, 2]},
        provider_error=ProviderErrorInfo(status_code=500, body={"e": 1}),
    )
    back = AsmError.from_dict(err.to_dict())
    assert type(back) is type(err)
    assert back.to_dict() == err.to_dict()


def test_from_dict_turns_an_unknown_code_into_unknown_error_keeping_the_original() -> None:
    back = AsmError.from_dict({"code": "mystery", "message": "m", "details": {"a": 1}})
    assert back.code == "unknown_error"
    assert back.details == {"a": 1, "code": "mystery"}
    assert back.message == "m"


def test_from_dict_keeps_an_unreadable_provider_error_raw() -> None:
    back = AsmError.from_dict({"code": "provider_error", "provider_error": {"status_code": "x"}})
    assert back.provider_error is None
    assert back.details["provider_error"] == {"status_code": "x"}


def test_from_dict_keeps_non_dict_details_under_value() -> None:
    back = AsmError.from_dict({"code": "invalid_input", "details": [1, 2]})
    assert back.details == {"value": [1, 2]}


def test_from_dict_ignores_a_non_boolean_retry_bit() -> None:
    back = AsmError.from_dict({"code": "timeout", "retryable": "yes"})
    assert back.retryable is True


def test_error_survives_pickle_and_copy_with_every_field() -> None:
    err = error(
        "provider_rate_limited",
        "slow",
        details={"a": 1},
        provider_error=ProviderErrorInfo(retry_after=2.0),
    )
    for clone in (pickle.loads(pickle.dumps(err)), copy.copy(err)):
        assert type(clone) is ProviderError
        assert clone.to_dict() == err.to_dict()


def test_category_classes_each_carry_their_category() -> None:
    for category, cls in SUBCLASSES.items():
        assert issubclass(cls, AsmError)
        assert cls.category == category


def test_provider_error_info_drops_credential_headers_and_lowercases_names() -> None:
    info = ProviderErrorInfo(
        headers={"Authorization": "Bearer s", "X-Api-Key": "k", "Set-Cookie": "c", "X-Req": "1"}
    )
    assert info.headers == {"x-req": "1"}


def test_provider_error_info_reads_retry_after_seconds_from_headers() -> None:
    assert ProviderErrorInfo(headers={"Retry-After": "3"}).retry_after == 3.0


def test_provider_error_info_reads_retry_after_ms_header() -> None:
    assert ProviderErrorInfo(headers={"retry-after-ms": "1500"}).retry_after == 1.5


def test_provider_error_info_ignores_http_date_retry_after_as_it_needs_a_clock() -> None:
    info = ProviderErrorInfo(headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert info.retry_after is None


def test_provider_error_info_explicit_retry_after_wins_over_the_header() -> None:
    assert ProviderErrorInfo(retry_after=1.0, headers={"retry-after": "9"}).retry_after == 1.0


def test_provider_error_info_rejects_a_negative_retry_after() -> None:
    with pytest.raises(PydanticValidationError):
        ProviderErrorInfo(retry_after=-1)


def test_provider_error_info_truncates_a_huge_body() -> None:
    info = ProviderErrorInfo(body="x" * (MAX_ERROR_BODY_BYTES * 3))
    assert isinstance(info.body, str)
    assert len(info.body.encode()) <= MAX_ERROR_BODY_BYTES
    assert info.body.endswith("truncated]")


def test_provider_error_info_shrinks_a_huge_json_body_but_keeps_its_shape() -> None:
    body = {"type": "error", "error": {"type": "api_error", "message": "é" * 1_000_000}}
    info = ProviderErrorInfo(body=body, message="m" * 100_000, request_id="r" * 10_000)
    assert isinstance(info.body, dict)
    assert info.body["error"]["type"] == "api_error"
    assert json_size(info.body) <= MAX_ERROR_BODY_BYTES
    assert info.message is not None and len(info.message.encode()) <= MAX_MESSAGE_BYTES
    assert info.request_id is not None and len(info.request_id.encode()) <= 256


KEY = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789"


def test_an_error_is_capped_and_redacted_at_construction() -> None:
    err = error(
        "provider_unavailable",
        f"upstream said {KEY} " + "x" * 50_000,
        details={"page": f"<p>x-api-key: {KEY}</p>" * 10_000, "attempt": 2},
        provider_error=ProviderErrorInfo(body=f"Authorization: Bearer {KEY}" * 10_000),
    )
    assert len(err.message.encode()) <= MAX_MESSAGE_BYTES
    assert json_size(err.details) <= MAX_DETAILS_BYTES
    assert err.details["attempt"] == 2
    assert KEY not in repr(err.to_dict())
    # a later addition is bounded too
    err.details = {**err.details, "more": KEY * 1000}
    err.message = err.message + KEY
    assert json_size(err.details) <= MAX_DETAILS_BYTES
    assert KEY not in repr(err.to_dict())


def test_scrubbed_copy_redacts_configured_secrets_and_drops_the_chain() -> None:
    secret = "plain-secret-value-123"  # no credential shape: only the configured value finds it
    try:
        try:
            raise RuntimeError("x" * 1_000_000)
        except RuntimeError as cause:
            raise error(
                "provider_unavailable",
                f"said {secret}",
                details={"echo": secret},
                provider_error=ProviderErrorInfo(
                    body={"echo": secret}, message=secret, headers={"x-echo": secret}
                ),
            ) from cause
    except AsmError as err:
        clean = err.scrubbed([secret])
    assert secret not in repr(clean.to_dict())
    assert clean.code == "provider_unavailable" and clean.retryable
    assert clean.__cause__ is None and clean.__context__ is None


@given(
    message=st.text(max_size=3000),
    details=st.dictionaries(st.text(max_size=20), st.text(max_size=3000), max_size=8),
    body=st.text(max_size=10_000),
    repeat=st.integers(1, 400),
)
@settings(max_examples=60, deadline=None)
def test_any_error_stays_within_its_caps_and_keyless(
    message: str, details: dict[str, str], body: str, repeat: int
) -> None:
    echo = f" x-api-key: {KEY} "
    err = error(
        "provider_unavailable",
        (message + echo) * repeat,
        details={**details, "echo": echo * repeat},
        provider_error=ProviderErrorInfo(body=(body + echo) * repeat, message=message + echo),
    )
    assert len(err.message.encode()) <= MAX_MESSAGE_BYTES
    assert json_size(err.details) <= MAX_DETAILS_BYTES
    assert err.provider_error is not None
    assert json_size(err.provider_error.body) <= MAX_ERROR_BODY_BYTES
    assert KEY not in json.dumps(err.to_dict(), ensure_ascii=False)
