"""Content by reference, on the activity side: storing it, and reading a run's inputs back.

The session workflow cannot write to SQL, so content a caller sent inline above the limit
(:data:`core.content.INLINE_LIMIT`) goes through ``store_content``, a *local* activity: its
input stays in the worker and history records only its result, the reference. The provider
activity reads the references of its run's spec back into text before calling the provider,
and stores a long reply, returning its reference instead of the text.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from agent_session_manager.core.content import ContentRef, travels_by_reference
from agent_session_manager.core.contract import Message, RunSpec, StoreContent
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.protocol import STORE_CONTENT_ACTIVITY
from agent_session_manager.core.temporal import to_application_error
from agent_session_manager.store import EventStore


@dataclass
class ContentActivities:
    """The ``store_content`` local activity; dependencies are injected by the worker."""

    store: EventStore

    @activity.defn(name=STORE_CONTENT_ACTIVITY)
    async def store_content(self, arg: StoreContent) -> ContentRef:
        """Store ``arg.content`` (idempotent by digest) and return its reference."""
        try:
            return await self.store.put_content(arg.content, arg.media_type)
        except AsmError as err:
            # The session waits for the store rather than fail a caller's run over an outage
            # (the workflow's retry policy bounds the wait between attempts).
            if err.category == "storage":
                err.retryable = True
            raise to_application_error(err) from err


@dataclass(frozen=True)
class RunInputs:
    """A run's inputs with every reference read back into text."""

    system_prompt: str | None
    #: This run's new messages, a referenced prompt appended as the last user message.
    messages: list[Message]
    #: The text of the last user message (the run's read model shows it).
    prompt: str


async def read_inputs(store: EventStore, spec: RunSpec) -> RunInputs:
    """Read ``spec``'s system prompt and prompt references from ``store``."""
    system = spec.system_prompt
    if spec.system_prompt_ref is not None:
        system = await store.get_text(spec.system_prompt_ref)
    messages = list(spec.messages)
    if spec.prompt_ref is not None:
        messages.append(Message(role="user", content=await store.get_text(spec.prompt_ref)))
    return RunInputs(
        system_prompt=system,
        messages=messages,
        prompt=messages[-1].text() if messages else "",
    )


async def store_reply(store: EventStore, text: str) -> tuple[str, ContentRef | None]:
    """The reply as a result carries it: inline when short, else stored and ``("", ref)``."""
    if not travels_by_reference(text):
        return text, None
    return "", await store.put_content(text)


__all__ = ["ContentActivities", "RunInputs", "read_inputs", "store_reply"]
