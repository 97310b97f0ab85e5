"""core.content: what a content reference is, and which content travels by one."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent_session_manager.core.content import (
    INLINE_LIMIT,
    ContentRef,
    content_bytes,
    digest_of,
    ref_of,
    travels_by_reference,
)
from agent_session_manager.core.contract import MockText, RunRequest, RunSpec, SessionSpec


def test_a_reference_names_the_sha256_and_the_size_of_the_utf8_bytes() -> None:
    text = "héllo ✓"
    data = text.encode()
    ref = ref_of(text)
    assert ref.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert ref.size == len(data) == 10
    assert ref.media_type == "text/plain; charset=utf-8"
    assert ref_of(data) == ref


def test_the_limit_is_in_bytes_not_characters() -> None:
    assert not travels_by_reference("a" * INLINE_LIMIT)
    assert travels_by_reference("a" * (INLINE_LIMIT + 1))
    # 2,049 two-byte characters are fewer characters than the limit but more bytes.
    assert travels_by_reference("é" * (INLINE_LIMIT // 2 + 1))
    assert not travels_by_reference("é" * (INLINE_LIMIT // 2))
    assert not travels_by_reference(None)


@given(st.text(max_size=3 * INLINE_LIMIT) | st.binary(max_size=3 * INLINE_LIMIT))
def test_travels_by_reference_iff_over_the_limit_in_bytes(content: str | bytes) -> None:
    assert travels_by_reference(content) == (len(content_bytes(content)) > INLINE_LIMIT)


@given(st.text())
def test_equal_content_has_equal_references(text: str) -> None:
    assert ref_of(text) == ref_of(text.encode())
    assert ref_of(text).digest == digest_of(text.encode())


@pytest.mark.parametrize(
    "fields",
    [
        {"digest": "md5:abc", "size": 1},
        {"digest": "sha256:" + "A" * 64, "size": 1},
        {"digest": "sha256:" + "a" * 63, "size": 1},
        {"digest": "sha256:" + "a" * 64, "size": -1},
        {"digest": "sha256:" + "a" * 64, "size": 1, "extra": True},
    ],
)
def test_a_malformed_reference_is_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ContentRef.model_validate(fields)


def test_a_run_takes_a_prompt_or_its_reference_not_both() -> None:
    ref = ref_of("x" * (INLINE_LIMIT + 1))
    assert RunRequest(prompt_ref=ref).input_messages() == []
    assert RunRequest(prompt_ref=ref).preview() == f"(prompt of {ref.size} bytes, by reference)"
    assert RunRequest(prompt="hello").preview() == "hello"
    with pytest.raises(ValidationError, match="not both"):
        RunRequest(prompt="hello", prompt_ref=ref)
    with pytest.raises(ValidationError, match="needs a prompt"):
        RunRequest()


def test_a_session_takes_a_system_prompt_or_its_reference_not_both() -> None:
    ref = ref_of("s" * (INLINE_LIMIT + 1))
    assert SessionSpec(agent_id="a", system_prompt_ref=ref).system_prompt is None
    with pytest.raises(ValidationError, match="not both"):
        SessionSpec(agent_id="a", system_prompt="short", system_prompt_ref=ref)


def test_a_ten_megabyte_prompt_makes_a_run_spec_of_a_few_hundred_bytes() -> None:
    ref = ref_of("p" * 10_000_000)
    spec = RunSpec(
        run_id="r1",
        session_id="s1",
        agent_id="a",
        provider="mock",
        turn=1,
        messages=[],
        prompt_ref=ref,
        system_prompt_ref=ref_of("s" * 5_000_000),
    )
    assert len(spec.model_dump_json()) < 1024


def test_a_mock_reply_is_bounded_however_its_text_repeats() -> None:
    assert MockText(text="abcdefghij", repeat=10_000_000).repeat == 10_000_000  # at the bound
    assert MockText(text="ab", repeat=3).full_text() == "ababab"
    with pytest.raises(ValidationError, match="at most 100000000"):
        MockText(text="x" * 1000, repeat=1_000_000)
