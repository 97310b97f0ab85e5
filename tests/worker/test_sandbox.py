"""The worker's sandbox gives no serialization context only when nothing can read it.

``worker.sandbox.ContextFreeRunner`` skips the SDK's per-payload trip into the sandbox for a
context, which only a payload codec or external storage reads. These tests pin the choice to
the converter and show that a codec still gets its per-command context, end to end.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from typing import Self

from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import (
    ActivitySerializationContext,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import run_workflow_id
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.store import EventStore
from agent_session_manager.worker.sandbox import ContextFreeRunner, workflow_runner
from agent_session_manager.worker.worker import serve

ENCODING = b"binary/asm-test-base64"


class ContextRecordingCodec(PayloadCodec, WithSerializationContext):
    """Base64 behind its own encoding; notes what it encoded under an activity's context."""

    def __init__(self, seen: list[bytes], context: SerializationContext | None = None) -> None:
        self.seen = seen
        self.context = context

    def with_context(self, context: SerializationContext) -> Self:
        return type(self)(self.seen, context)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if isinstance(self.context, ActivitySerializationContext):
            self.seen.extend(self.context.activity_type.encode() + p.data[:9] for p in payloads)
        return [
            Payload(metadata={"encoding": ENCODING}, data=base64.b64encode(p.SerializeToString()))
            for p in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)
                continue
            decoded = Payload()
            decoded.ParseFromString(base64.b64decode(p.data))
            out.append(decoded)
        return out


def test_the_runner_skips_the_context_only_when_the_converter_cannot_read_it() -> None:
    assert type(workflow_runner(data_converter)) is ContextFreeRunner
    with_codec = dataclasses.replace(data_converter, payload_codec=ContextRecordingCodec([]))
    runner = workflow_runner(with_codec)
    assert type(runner) is SandboxedWorkflowRunner  # the SDK's own, contexts and all
    # Both pass our pure modules through.
    assert runner.restrictions == workflow_runner(data_converter).restrictions
    assert "agent_session_manager.core" in runner.restrictions.passthrough_modules


async def test_a_worker_on_a_plain_client_runs_the_context_free_sandbox(
    temporal: Client, store: EventStore, task_queue: str
) -> None:
    async with serve(temporal, store, task_queue=task_queue, secrets={}) as worker:
        assert type(worker.config()["workflow_runner"]) is ContextFreeRunner
        client = SessionClient(temporal, store, task_queue=task_queue)
        sid = (await client.start_session(agent_id="plain", provider="mock")).session_id
        result = await client.run(sid, "hello")
    assert result.status is RunStatus.COMPLETED


async def test_a_codec_still_sees_each_activity_s_context_and_the_history_is_encoded(
    temporal: Client, store: EventStore, task_queue: str
) -> None:
    seen: list[bytes] = []
    codec_client = Client(
        temporal.service_client,
        namespace=temporal.namespace,
        data_converter=dataclasses.replace(
            data_converter, payload_codec=ContextRecordingCodec(seen)
        ),
    )
    async with serve(codec_client, store, task_queue=task_queue, secrets={}) as worker:
        assert type(worker.config()["workflow_runner"]) is SandboxedWorkflowRunner
        client = SessionClient(codec_client, store, task_queue=task_queue)
        sid = (await client.start_session(agent_id="codec", provider="mock")).session_id
        result = await client.run(sid, "hello")
    assert result.status is RunStatus.COMPLETED
    # The workflow encoded the provider activity's input (a ProviderCall: '{"spec":') under
    # that activity's context, so a codec that keys on the activity (per-activity encryption
    # keys, say) still can. (The activity's own result is encoded by the activity worker.)
    assert any(note.startswith(b'stream_provider{"spec":') for note in seen)
    history = await temporal.get_workflow_handle(run_workflow_id(result.run_id)).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled and all(
        p.metadata["encoding"] == ENCODING for a in scheduled for p in a.input.payloads
    )
