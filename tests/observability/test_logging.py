"""Worker logs: JSON lines with the Temporal context, and secrets never in the output."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.client import Client

from agent_session_manager.activities.providers.base import (
    EventSink,
    ProviderRequest,
    ProviderResult,
)
from agent_session_manager.activities.providers.mock import MockProvider
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import CancelRun, session_workflow_id
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.status import RunStatus
from agent_session_manager.observability.log_context import log_context
from agent_session_manager.observability.redaction import REDACTED
from agent_session_manager.store import EventStore
from agent_session_manager.worker.log_config import configure_logging
from agent_session_manager.worker.settings import Settings
from agent_session_manager.worker.worker import serve

SECRET = "sk-ant-test-0123456789abcdef"
DB_PASSWORD = "s3cret-db-pass"
log = logging.getLogger("tests.chatty")


class ChattyProvider(MockProvider):
    """The mock provider, but it logs its credential (as a careless adapter might)."""

    name = "chatty"

    async def stream(self, request: ProviderRequest, sink: EventSink) -> ProviderResult:
        log.info("calling upstream with key %s", request.secrets.get("ANTHROPIC_API_KEY"))
        return await super().stream(request, sink)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Install the worker's logging (JSON) into a buffer; restore the root logger after."""
    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    settings = Settings(
        log_format="json",
        log_level="INFO",
        database_url=f"postgresql+asyncpg://asm:{DB_PASSWORD}@db:5432/asm",
    )
    handler = configure_logging(settings, stream=buf, environ={"ANTHROPIC_API_KEY": SECRET})
    try:
        yield buf
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def records(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


async def wait_for_record(buf: io.StringIO, text: str) -> dict[str, Any]:
    for _ in range(100):
        found = [r for r in records(buf) if text in r["message"]]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no log record containing {text!r}: {buf.getvalue()[-2000:]}")


async def test_json_logs_carry_ids_and_never_the_secret(
    captured: io.StringIO,
    temporal: Client,
    store: EventStore,
    task_queue: str,
) -> None:
    buf = captured
    providers = {"mock": MockProvider(), "chatty": ChattyProvider()}
    secrets = {"ANTHROPIC_API_KEY": SECRET}
    async with serve(temporal, store, task_queue=task_queue, providers=providers, secrets=secrets):
        client = SessionClient(temporal, store, task_queue=task_queue)
        view = await client.start_session(agent_id="logger", provider="chatty")
        ref = await client.submit_run(view.session_id, "log something")
        assert (await client.wait_run(ref.run_id, view.session_id)).status is RunStatus.COMPLETED
        # A workflow-side log line: the session warns about a cancel for an unknown run.
        handle = temporal.get_workflow_handle(session_workflow_id(view.session_id))
        await handle.signal("cancel_run", CancelRun(run_id="run_nope"))
        workflow_line = await wait_for_record(buf, "cancel_run signal for unknown run")

    activity_line = await wait_for_record(buf, "calling upstream with key")
    assert activity_line["message"] == f"calling upstream with key {REDACTED}"
    assert activity_line["level"] == "INFO" and activity_line["logger"] == "tests.chatty"
    assert activity_line["session_id"] == view.session_id
    assert activity_line["run_id"] == ref.run_id
    assert activity_line["workflow_id"] == f"run-{ref.run_id}"
    assert activity_line["workflow_type"] == "AgentRun"
    assert activity_line["activity_type"] == "stream_provider"
    assert activity_line["activity_id"]
    assert activity_line["attempt"] == 1
    assert activity_line["task_queue"] == task_queue

    assert workflow_line["session_id"] == view.session_id
    assert workflow_line["workflow_id"] == f"session-{view.session_id}"
    assert workflow_line["workflow_type"] == "AgentSession"
    assert workflow_line["level"] == "WARNING"

    output = buf.getvalue()
    assert SECRET not in output
    assert all(json.loads(line) for line in output.splitlines() if line.strip())


def test_secrets_are_redacted_from_exceptions_and_text_format() -> None:
    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    settings = Settings(
        log_format="text",
        log_level="INFO",
        database_url=f"postgresql+asyncpg://asm:{DB_PASSWORD}@db/asm",
    )
    handler = configure_logging(settings, stream=buf, environ={"OPENAI_API_KEY": SECRET})
    try:
        with log_context(session_id="ses_1", run_id="run_1"):
            try:
                raise RuntimeError(f"upstream rejected {SECRET}")
            except RuntimeError:
                log.exception("connect failed to postgresql://asm:%s@db", DB_PASSWORD)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    output = buf.getvalue()
    assert SECRET not in output and DB_PASSWORD not in output
    assert f"upstream rejected {REDACTED}" in output
    assert "[session=ses_1 run=run_1]" in output


def test_unknown_log_format_is_rejected() -> None:
    with pytest.raises(AsmError) as info:
        configure_logging(Settings(log_format="xml"), stream=io.StringIO())
    assert info.value.code == "validation_error"
