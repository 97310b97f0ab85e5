"""What the ``anthropic`` adapter tests share: a recording sink, the fake, a request builder.

A plain module rather than a conftest: ``tests/providers`` is shared with other adapters' tests,
and these fixtures are imported by the modules that use them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent_session_manager.activities.providers.base import ProviderRequest
from agent_session_manager.core.contract import Message
from agent_session_manager.core.events import EventType
from tests.fakes.anthropic_server import AnthropicFake

#: Distinctive, so a leak into an event, a repr or an error is easy to spot.
API_KEY = "sk-ant-test-SECRET-7f3a9c1e5b"
MODEL = "claude-sonnet-4-6"


@dataclass
class RecordingSink:
    """An :class:`activities.providers.base.EventSink` that keeps what it is given."""

    events: list[tuple[EventType, dict[str, Any]]] = field(default_factory=list)
    flushes: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition, repr=False)

    async def emit(self, type: EventType, data: dict[str, Any] | None = None) -> None:
        self.events.append((type, dict(data or {})))
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, type: EventType) -> None:
        """Return once an event of ``type`` has been emitted (bound it with a timeout)."""
        async with self._changed:
            await self._changed.wait_for(lambda: type in self.types)

    async def flush(self) -> None:
        self.flushes += 1

    @property
    def types(self) -> list[EventType]:
        return [t for t, _ in self.events]

    def of(self, type: EventType) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == type]


# Fixtures for the test modules to import (registered under the names tests ask for).


@pytest.fixture(name="fake")
async def anthropic_fake() -> AsyncIterator[AnthropicFake]:
    """A running :class:`AnthropicFake` with an empty script."""
    async with AnthropicFake() as server:
        yield server


@pytest.fixture(name="sink")
def recording_sink() -> RecordingSink:
    """A fresh :class:`RecordingSink`."""
    return RecordingSink()


def make_request(
    base_url: str,
    *,
    prompt: str | None = "Hello?",
    messages: list[Message] | None = None,
    history: list[Message] | None = None,
    system_prompt: str | None = None,
    options: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    model: str | None = MODEL,
    attempt: int = 1,
) -> ProviderRequest:
    """A provider request pointed at ``base_url`` with :data:`API_KEY` unless told otherwise."""
    if messages is None:
        messages = [Message(role="user", content=prompt or "Hello?")]
    return ProviderRequest(
        session_id="s-1",
        run_id="r-1",
        attempt=attempt,
        turn=1,
        model=model,
        system_prompt=system_prompt,
        history=list(history or []),
        messages=messages,
        options=dict(options or {}),
        secrets=(
            secrets
            if secrets is not None
            else {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": base_url}
        ),
    )
