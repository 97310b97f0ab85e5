"""The error taxonomy: codes, categories, retry bits, subclasses and their dict form."""

from __future__ import annotations

import copy
import pickle

import pytest
from pydantic import ValidationError as PydanticValidationError

from agent_session_manager.core.errors import (
    CODES,
    MAX_ERROR_BODY_CHARS,
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
    info = ProviderErrorInfo(body="x" * (MAX_ERROR_BODY_CHARS * 3))
    assert isinstance(info.body, str)
    assert len(info.body) < MAX_ERROR_BODY_CHARS + 20
    assert info.body.endswith("[truncated]")
