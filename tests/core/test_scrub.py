"""Redaction and byte caps (core.scrub): whatever the text, the result fits and holds no key."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_session_manager.core.scrub import (
    REDACTED,
    cap,
    json_size,
    redact,
    scrub,
    scrub_value,
)

ANTHROPIC_KEY = "sk-ant-api03-Zx9_abcDEF-0123456789"
OPENAI_KEY = "sk-proj-AbCdEf0123456789xyz"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.payload.sig"
#: A configured secret with no credential shape: only the exact value can find it.
CONFIGURED = "plain-password-4711"
KEYS = [ANTHROPIC_KEY, OPENAI_KEY, TOKEN, CONFIGURED]

# Multi-byte characters (2, 3 and 4 bytes in UTF-8) and separators a page puts around a key.
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
# A key recognised by its shape must stand apart from the word before it ("task-list" is no
# key); a configured secret is found wherever it is, glued to anything.
around = st.sampled_from([" ", "\n", "∂", "😀", '"', "<p>", ": ", "=", ","])


@st.composite
def text_with_a_key(draw: st.DrawFn) -> tuple[str, str]:
    key = draw(st.sampled_from(KEYS))
    form = draw(
        st.sampled_from(
            ["{k}", "Bearer {k}", "x-api-key: {k}", '"api_key": "{k}"', "Authorization: Bearer {k}"]
        )
    )
    if key in (TOKEN,) and "Bearer" not in form:
        form = "Bearer {k}"  # a token is recognised by its scheme
    before = draw(st.sampled_from(["", draw(around)])) if key == CONFIGURED else draw(around)
    parts = [draw(texts), before, form.format(k=key), draw(around), draw(texts)]
    return "".join(parts) * draw(st.integers(1, 3)), key


@given(texts, st.integers(0, 600))
def test_cap_never_exceeds_the_budget_and_is_valid_utf8(text: str, max_bytes: int) -> None:
    out = cap(text, max_bytes)
    data = out.encode("utf-8")  # raises on a lone surrogate or a split character
    assert len(data) <= max_bytes


@given(texts)
def test_cap_keeps_text_that_fits_unchanged(text: str) -> None:
    data = text.encode("utf-8", "replace")
    assert cap(text, len(data)) == data.decode("utf-8")


@given(text_with_a_key(), st.integers(0, 2000))
@settings(max_examples=300)
def test_scrub_fits_and_never_leaves_a_key(case: tuple[str, str], max_bytes: int) -> None:
    text, key = case
    out = scrub(text, max_bytes, secrets=[CONFIGURED])
    assert len(out.encode("utf-8")) <= max_bytes
    assert key not in out


@given(text_with_a_key(), st.integers(1, 5))
def test_scrub_finds_a_key_past_a_long_prefix(case: tuple[str, str], pages: int) -> None:
    # The key sits right where the cap cuts: redaction must still see all of it.
    text, key = case
    out = scrub("é" * 500 * pages + text, 1000 * pages + 5, secrets=[CONFIGURED])
    assert key not in out


def test_redact_keeps_the_context_and_marks_the_spot() -> None:
    out = redact(f"x-api-key: {ANTHROPIC_KEY}; Authorization: Bearer {TOKEN}; ok")
    assert out == f"x-api-key: {REDACTED}; Authorization: Bearer {REDACTED}; ok"


def test_short_configured_values_are_not_redacted() -> None:
    # Replacing "abc" everywhere would garble text, and such a value is no credential.
    assert redact("abc and abcdef", secrets=["abc"]) == "abc and abcdef"


def test_a_huge_text_is_cut_with_its_size_said() -> None:
    out = scrub("é" * 5_000_000, 1024)
    assert len(out.encode()) <= 1024
    assert out.endswith("[10000000 bytes, truncated]")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda children: (
        st.lists(children, max_size=20) | st.dictionaries(texts, children, max_size=20)
    ),
    max_leaves=200,
)


@given(json_values, st.integers(64, 4096), st.sampled_from(KEYS))
@settings(max_examples=200)
def test_scrub_value_fits_and_never_leaves_a_key(value: object, max_bytes: int, key: str) -> None:
    bare = f"Bearer {key}" if key == TOKEN else key  # a bare token has no shape to find
    planted = {
        "body": value,
        "echo": f"Bearer {key}",
        "list": [value, " ".join([bare] * 3), {bare: 1}],
    }
    out = scrub_value(planted, max_bytes, secrets=[CONFIGURED])
    assert json_size(out) <= max_bytes
    assert key not in json.dumps(out, ensure_ascii=False)


def test_scrub_value_keeps_small_fields_when_it_shrinks_big_ones() -> None:
    out = scrub_value({"code": "provider_unavailable", "attempt": 3, "page": "x" * 100_000}, 4096)
    assert out["code"] == "provider_unavailable" and out["attempt"] == 3
    assert json_size(out) <= 4096


def test_scrub_value_survives_deep_nesting() -> None:
    value: object = "leaf"
    for _ in range(5000):
        value = [value]
    assert json_size(scrub_value(value, 512)) <= 512


def test_scrub_value_keeps_what_json_would_make_of_dates_enums_and_models() -> None:
    from datetime import UTC, datetime

    from agent_session_manager.core.status import RunStatus
    from agent_session_manager.core.usage import TokenUsage

    at = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    out = scrub_value({"at": at, "status": RunStatus.FAILED, "usage": TokenUsage()}, 4096)
    assert out["at"] == at.isoformat()
    assert out["status"] == "failed"
    assert out["usage"] == TokenUsage().model_dump(mode="json")
