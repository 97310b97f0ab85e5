"""Issue 13, item 5: a provider's 5 MB HTML error page that echoes the API key.

The real ``anthropic`` SDK talks to the wire fake on 127.0.0.1, which answers every call with
a 5 MB ``text/html`` 503 page quoting the key; a traced worker runs a session end to end on the
test dev server. Then: the run failed as ``provider_unavailable`` (not, a minute later, as
``provider_timeout``: the failure reached the server), and nothing it left anywhere (history,
SQL, ``asm events`` / ``asm audit`` output, exported spans, log records at DEBUG) is over
16 KB or holds the key. How long each attempt takes is printed by ``bench/error_body.py``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from agent_session_manager.activities.providers import discover
from agent_session_manager.client.audit import audit_log, to_jsonl
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import (
    RetrySettings,
    SessionSpec,
    run_workflow_id,
    session_workflow_id,
)
from agent_session_manager.core.status import RunStatus
from agent_session_manager.observability.temporal_plugin import instrument_client
from agent_session_manager.store import EventStore
from agent_session_manager.worker.worker import serve
from tests.fakes.anthropic_server import AnthropicFake, HttpError, html_error_page
from tests.observability.conftest import Otel

#: Distinctive keys, so a leak anywhere is easy to find: one shaped like Anthropic's, one
#: with no credential shape at all (only the worker's configured secret value can find it).
KEYS = ["sk-ant-api03-HYGIENE-" + "q" * 40, "hygiene-plain-credential-" + "7" * 20]
LIMIT = 16 * 1024
ATTEMPTS = 3


def _database_files(directory: Path) -> dict[str, bytes]:
    """The SQLite file and its WAL, byte for byte (sync: read once, after the run)."""
    return {p.name: p.read_bytes() for p in directory.glob("asm.db*")}


@pytest.fixture(params=KEYS, ids=["sk-ant-key", "shapeless-key"])
def api_key(request: pytest.FixtureRequest) -> str:
    key: str = request.param
    return key


@pytest.fixture
async def fake(api_key: str) -> AsyncIterator[AnthropicFake]:
    async with AnthropicFake(api_key=api_key) as server:
        server.default = HttpError(
            503, body=html_error_page(5 * 1024 * 1024, echo=api_key), content_type="text/html"
        )
        yield server


async def test_a_5mb_html_error_page_fails_the_run_small_and_clean(
    otel: Otel,
    temporal: Client,
    store: EventStore,
    task_queue: str,
    fake: AnthropicFake,
    api_key: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    spans_before = len(otel.finished())
    traced = instrument_client(temporal, force=True)
    secrets = {"ANTHROPIC_API_KEY": api_key, "ANTHROPIC_BASE_URL": fake.base_url}
    async with serve(traced, store, task_queue=task_queue, providers=discover(), secrets=secrets):
        client = SessionClient(traced, store, task_queue=task_queue)
        spec = SessionSpec(
            agent_id="agent-hygiene",
            provider="anthropic",
            model="claude-sonnet-4-6",
            retry=RetrySettings(
                max_attempts=ATTEMPTS, initial_interval_seconds=0.1, maximum_interval_seconds=0.1
            ),
        )
        sid = (await client.start_session(spec)).session_id
        result = await client.run(sid, "hello")
        audit = list(to_jsonl(await audit_log(store, sid, temporal=temporal)))
        await client.complete_session(sid)
        await client.result(sid)

    # The failure reached the server, classified: every attempt answered 503.
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error["code"] == "provider_unavailable"
    assert result.attempts == ATTEMPTS
    assert len(fake.message_requests) == ATTEMPTS
    assert {r.credential for r in fake.message_requests} == {api_key}  # the key was used

    # History: every event of the session and the run is small and keyless.
    for wf in (session_workflow_id(sid), run_workflow_id(result.run_id)):
        history = await temporal.get_workflow_handle(wf).fetch_history()
        assert api_key not in history.to_json(), wf
        sizes = {e.event_id: e.ByteSize() for e in history.events}
        assert max(sizes.values()) <= LIMIT, (wf, sizes)

    # SQL: the error_occurred rows exist, one per attempt, small; the key is in no byte of
    # the database (the SQLite file and its WAL: every row of every table).
    events = await store.events(sid, limit=10_000)
    errors = [e for e in events if e.type.value == "error_occurred"]
    assert sorted(e.attempt for e in errors) == list(range(1, ATTEMPTS + 1))
    for event in events:
        line = event.model_dump_json()  # what `asm events --json` prints
        assert len(line.encode()) <= LIMIT, event.type
        assert api_key not in line
    assert "[REDACTED]" in json.dumps([e.data for e in errors])  # the echo was there, redacted
    files = _database_files(tmp_path)
    assert files, "no database file found"
    for name, content in files.items():
        assert api_key.encode() not in content, name

    # `asm audit` output.
    assert audit
    for line in audit:
        assert len(line.encode()) <= LIMIT
        assert api_key not in line

    # Exported spans: the failed attempts are there, each span small and keyless.
    spans = otel.finished()[spans_before:]
    failed = [s for s in spans if s.attributes and s.attributes.get("asm.run_id") == result.run_id]
    assert [s.attributes.get("error.type") for s in failed if s.name.startswith("chat")] == [
        "provider_unavailable"
    ] * ATTEMPTS
    for span in spans:
        exported = span.to_json()
        assert len(exported.encode()) <= LIMIT, span.name
        assert api_key not in exported, span.name

    # Logs (captured at DEBUG, so the SDK's and the traceback lines count too).
    formatter = logging.Formatter()
    for record in caplog.records:
        line = formatter.format(record)
        assert len(line.encode()) <= LIMIT, (record.name, line[:200])
        assert api_key not in line, record.name
    # One WARNING line per failed attempt, naming the code and the status; none from the SDK.
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "attempt" in r.getMessage()
    ]
    assert len(warnings) == ATTEMPTS, warnings
    assert all("provider_unavailable (HTTP 503)" in w and "\n" not in w for w in warnings)
    assert not [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.getMessage().startswith("Completing activity")
    ]
