"""put_content() / get_content(): content-addressed, idempotent, verified, on both backends."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_session_manager.core.content import ContentRef, ref_of
from agent_session_manager.core.errors import AsmError
from agent_session_manager.store import EventStore
from agent_session_manager.store._schema import CONTENT


async def _rows(store: EventStore, digest: str) -> int:
    async with store.engine.connect() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count()).select_from(CONTENT).where(CONTENT.c.digest == digest)
        )
    return int(count or 0)


async def test_put_returns_the_reference_and_get_returns_the_content(store: EventStore) -> None:
    text = "a prompt ✓ " * 1000
    ref = await store.put_content(text)
    assert ref == ref_of(text)
    assert await store.get_text(ref) == text
    assert await store.get_content(ref) == text.encode()


async def test_putting_the_same_content_twice_stores_one_row(store: EventStore) -> None:
    text = "same content, twice " + "x" * 5000
    first = await store.put_content(text)
    second = await store.put_content(text)
    assert first == second
    assert await _rows(store, first.digest) == 1


async def test_ten_megabytes_round_trip(store: EventStore) -> None:
    text = "0123456789" * 1_000_000
    ref = await store.put_content(text)
    assert ref.size == 10_000_000
    assert await store.get_text(ref) == text


async def test_bytes_with_nul_round_trip(store: EventStore) -> None:
    # PostgreSQL text columns refuse NUL: content is stored as bytes.
    data = b"\x00\xff binary \x00"
    ref = await store.put_content(data, "application/octet-stream")
    assert await store.get_content(ref) == data
    with pytest.raises(AsmError) as err:
        await store.get_text(ref)
    assert err.value.code == "invalid_input"


async def test_an_unknown_reference_is_not_found(store: EventStore) -> None:
    ref = ref_of("never stored " + "?" * 100)
    with pytest.raises(AsmError) as err:
        await store.get_content(ref)
    assert err.value.code == "not_found"
    assert ref.digest in err.value.message


async def test_a_reference_whose_size_disagrees_is_refused(store: EventStore) -> None:
    ref = await store.put_content("twelve bytes")
    wrong = ContentRef(digest=ref.digest, size=ref.size + 1)
    with pytest.raises(AsmError) as err:
        await store.get_content(wrong)
    assert err.value.code == "storage_read_failed"


@settings(
    max_examples=30,
    deadline=None,
    # The store is shared by the examples on purpose: writes are idempotent by digest.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.text(max_size=20_000))
async def test_any_text_round_trips(store: EventStore, text: str) -> None:
    ref = await store.put_content(text)
    assert ref == await store.put_content(text)
    assert await store.get_text(ref) == text
