"""Callers see progress, not failures: the waiting calls ride out Temporal and store outages.

Outages are real: a TCP proxy (tests/fakes/tcp_proxy.py) sits between the client under test
and the Temporal dev server (or PostgreSQL) and is cut and restored; the worker talks to the
servers directly, so the run goes on meanwhile, as it would in production while one client's
network is down. The proxied Temporal client gives up its own retries after ~0.5 s (a short
``RetryConfig``), so the client layer, not the SDK, is what rides out the outage here.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.service import RetryConfig
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.activities.providers import discover
from agent_session_manager.client.outages import Outage, OutageWaiter, Patience, next_step
from agent_session_manager.client.session_client import Reset, SessionClient, TextDelta
from agent_session_manager.core.contract import MockScript, MockText, SessionSpec
from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.events import Event
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.store import EventStore, open_store, upgrade
from agent_session_manager.worker.worker import serve
from tests.client.test_cli import REPO, asm, cli_env
from tests.fakes.tcp_proxy import TcpProxy
from tests.postgres import SKIP_REASON, PgServer, pg_base_url

#: The proxied client's own retries end after ~0.5 s, so outages reach the client layer fast.
SHORT_SDK_RETRIES = RetryConfig(
    initial_interval_millis=50, max_interval_millis=200, max_elapsed_time_millis=500, max_retries=3
)
#: Long enough that the run goes on (and ends) while the client cannot see it.
OUTAGE_SECONDS = 4.0
#: A PostgreSQL follower that is listening re-reads only every 5 s (the store's safety read)
#: unless notified, so only a longer outage is ever seen by it (a shorter one is invisible).
FOLLOWER_OUTAGE_SECONDS = 9.0
TEXT = "outage-proof " * 8
#: ~3 s of streaming: the run is mid-stream when the outage starts.
SLOW = MockScript(steps=[MockText(text=TEXT, chunk_size=2, delay_ms=55)])


def patience(reports: list[Outage], seconds: float | None = 120.0) -> Patience:
    return Patience(
        seconds=seconds,
        initial_backoff=0.05,
        max_backoff=0.3,
        report_every=1.0,
        on_progress=reports.append,
    )


@pytest.fixture
async def temporal_proxy(env: WorkflowEnvironment) -> AsyncIterator[TcpProxy]:
    async with TcpProxy.to(env.client.service_client.config.target_host) as proxy:
        yield proxy


@pytest.fixture
async def proxied_temporal(temporal_proxy: TcpProxy) -> Client:
    return await Client.connect(
        temporal_proxy.address, data_converter=data_converter, retry_config=SHORT_SDK_RETRIES
    )


@pytest.fixture
def reports() -> list[Outage]:
    return []


@pytest.fixture
def proxied(
    proxied_temporal: Client, store: EventStore, task_queue: str, reports: list[Outage]
) -> SessionClient:
    """A client whose Temporal connection goes through the cuttable proxy."""
    return SessionClient(proxied_temporal, store, task_queue=task_queue, patience=patience(reports))


def gap_free(events: list[Event]) -> bool:
    seqs = [e.seq for e in events]
    return seqs == list(range(1, len(seqs) + 1))


async def collect_text(client: SessionClient, session_id: str, run_id: str) -> str:
    text = ""
    async for piece in client.stream_text(session_id, run_id):
        if isinstance(piece, Reset):
            text = ""
        elif isinstance(piece, TextDelta):
            text += piece.text
    return text


# --- Temporal outages --------------------------------------------------------------------


async def test_wait_run_and_stream_text_ride_out_a_temporal_outage(
    client: SessionClient,
    proxied: SessionClient,
    temporal_proxy: TcpProxy,
    store: EventStore,
    reports: list[Outage],
    run_worker: Any,
) -> None:
    async with run_worker():
        sid = (await client.start_session(SessionSpec(agent_id="outage", mock=SLOW))).session_id
        ref = await client.submit_run(sid, "go")
        waiting = asyncio.create_task(proxied.wait_run(ref.run_id, sid))
        streaming = asyncio.create_task(collect_text(proxied, sid, ref.run_id))
        await asyncio.sleep(0.3)  # wait_run is in its long poll when the line goes down
        await temporal_proxy.cut()
        await asyncio.sleep(OUTAGE_SECONDS)  # the run streams on, and ends, in the worker
        await temporal_proxy.restore()
        result = await asyncio.wait_for(waiting, 60)
        text = await asyncio.wait_for(streaming, 60)
    assert result.status is RunStatus.COMPLETED
    assert result.output == text == TEXT
    assert gap_free(await store.events(sid, limit=10_000))
    assert reports, "the outage was reported while waiting"
    assert {r.component for r in reports} == {"temporal"}
    assert reports[0].where == temporal_proxy.address
    assert str(reports[0]).startswith(f"Temporal at {temporal_proxy.address} unreachable (")


async def test_session_result_rides_out_a_temporal_outage(
    client: SessionClient,
    proxied: SessionClient,
    temporal_proxy: TcpProxy,
    reports: list[Outage],
    run_worker: Any,
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="outage")).session_id
        waiting = asyncio.create_task(proxied.result(sid))
        await temporal_proxy.cut()
        await client.cancel_session(sid, reason="ends during the outage")
        await asyncio.sleep(OUTAGE_SECONDS)
        await temporal_proxy.restore()
        summary = await asyncio.wait_for(waiting, 60)
    assert summary.status.value == "cancelled"
    assert {r.component for r in reports} == {"temporal"}


async def test_start_session_rides_out_a_connection_lost_while_it_waits_for_the_start(
    proxied: SessionClient,
    temporal_proxy: TcpProxy,
    reports: list[Outage],
    run_worker: Any,
) -> None:
    # No worker yet: the session is started, and start_session waits in its describe query
    # when the line goes down (seen in CI as a server's GOAWAY cutting that long query).
    starting = asyncio.create_task(proxied.start_session(agent_id="outage"))
    await asyncio.sleep(1.0)
    assert not starting.done()
    await temporal_proxy.cut()
    await asyncio.sleep(1.0)
    await temporal_proxy.restore()
    async with run_worker():
        view = await asyncio.wait_for(starting, 60)
    assert view.ready and view.agent_id == "outage"
    assert {r.component for r in reports} == {"temporal"}


async def test_one_shot_calls_fail_fast_with_temporal_unavailable(
    client: SessionClient,
    proxied_temporal: Client,
    store: EventStore,
    task_queue: str,
    temporal_proxy: TcpProxy,
    run_worker: Any,
) -> None:
    impatient = SessionClient(
        proxied_temporal, store, task_queue=task_queue, patience=Patience(seconds=0)
    )
    async with run_worker():
        sid = (await client.start_session(SessionSpec(agent_id="outage", mock=SLOW))).session_id
        ref = await client.submit_run(sid, "go")
        await temporal_proxy.cut()
        calls = {
            "describe": impatient.describe(sid),
            "submit_run": impatient.submit_run(sid, "more"),
            "pause": impatient.pause(sid),
            "cancel_session": impatient.cancel_session(sid),
            "list_sessions": impatient.list_sessions(),
            "start_session": impatient.start_session(agent_id="outage"),
            "wait_run": impatient.wait_run(ref.run_id, sid),
            # The bug this guards: an unknown run while Temporal is down was `run_not_found`.
            "wait_run unknown": impatient.wait_run("run_never_was", sid),
            "wait_run no session": impatient.wait_run("run_never_was"),
            "result": impatient.result(sid),
        }
        codes: dict[str, str] = {}
        for name, call in calls.items():
            with pytest.raises(AsmError) as info:
                await call
            codes[name] = info.value.code
            assert info.value.retryable, name
            assert temporal_proxy.address in info.value.message, name
        await temporal_proxy.restore()
        assert (await client.wait_run(ref.run_id, sid)).status is RunStatus.COMPLETED
    assert codes == dict.fromkeys(calls, "temporal_unavailable")


async def test_wait_run_gives_up_after_its_patience_saying_temporal_is_down(
    proxied_temporal: Client,
    store: EventStore,
    task_queue: str,
    temporal_proxy: TcpProxy,
) -> None:
    reports: list[Outage] = []
    waiting = SessionClient(
        proxied_temporal, store, task_queue=task_queue, patience=patience(reports, seconds=1.5)
    )
    await temporal_proxy.cut()
    with pytest.raises(AsmError) as info:
        await waiting.wait_run("run_whatever", "ses_whatever")
    assert info.value.code == "temporal_unavailable"
    assert "waited" in info.value.message
    assert reports and reports[0].component == "temporal"


async def test_a_run_temporal_does_not_know_is_still_run_not_found(
    client: SessionClient,
) -> None:
    # The other side of the bug: when Temporal answers NOT_FOUND, that is the answer.
    with pytest.raises(AsmError) as info:
        await client.wait_run("run_never_was")
    assert info.value.code == "run_not_found"


# --- the waiter's policy -------------------------------------------------------------------


async def test_the_waiter_raises_what_is_not_an_outage_at_once() -> None:
    reports: list[Outage] = []
    waiter = OutageWaiter(patience(reports), lambda component: component)
    for code in ("run_not_found", "provider_unavailable", "validation_error"):
        with pytest.raises(AsmError) as info:
            await waiter.wait_out(error(code))
        assert info.value.code == code
    assert reports == []


async def test_the_waiter_names_the_component_and_resumes_after_recovery() -> None:
    reports: list[Outage] = []
    waiter = OutageWaiter(patience(reports), lambda component: f"{component}-address")
    await waiter.wait_out(error("storage_connection_failed", "db down"))
    waiter.recovered()
    await waiter.wait_out(error("temporal_unavailable", "server down"))
    assert [(r.component, r.where) for r in reports] == [
        ("store", "store-address"),
        ("temporal", "temporal-address"),
    ]
    assert waiter.outages == 2
    assert (
        str(reports[0])
        == "the event store at store-address unreachable (db down), retrying for 120 s…"
    )


def test_patience_refuses_nonsense() -> None:
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"Patience\.seconds"):
            Patience(seconds=bad)
    with pytest.raises(ValueError, match="backoff"):
        Patience(initial_backoff=2.0, max_backoff=1.0)


# --- store outages (PostgreSQL behind the proxy) --------------------------------------------


@pytest.fixture(scope="session")
async def pg() -> AsyncIterator[PgServer]:
    base = pg_base_url()
    if base is None:
        pytest.skip(SKIP_REASON)
    server = PgServer(base)
    yield server
    await server.drop_all()


@pytest.fixture
async def pg_url(pg: PgServer) -> str:
    url = await pg.create()
    await upgrade(url)
    return url


async def test_stream_and_wait_ride_out_a_store_outage_resuming_from_the_cursor(
    pg_url: str, temporal: Client, task_queue: str
) -> None:
    parsed = make_url(pg_url)
    reports: list[Outage] = []
    async with TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432) as proxy:
        worker_store = await open_store(pg_url)  # the worker reaches PostgreSQL directly
        client_store = await open_store(
            parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        )
        client = SessionClient(
            temporal, client_store, task_queue=task_queue, patience=patience(reports)
        )
        worker = serve(
            temporal, worker_store, task_queue=task_queue, providers=discover(), secrets={}
        )
        try:
            async with worker:
                sid = (await client.start_session(SessionSpec(agent_id="pg", mock=SLOW))).session_id
                ref = await client.submit_run(sid, "go")
                delivered: list[Event] = []
                streaming_now = asyncio.Event()

                async def follow() -> None:
                    async for event in client.stream_events(
                        sid,
                        until=lambda e: e.run_id == ref.run_id and e.type.value == "run_completed",
                    ):
                        delivered.append(event)
                        streaming_now.set()

                following = asyncio.create_task(follow())
                streaming = asyncio.create_task(collect_text(client, sid, ref.run_id))
                await streaming_now.wait()  # mid-stream: now take the store away from the client
                await proxy.cut()
                await asyncio.sleep(FOLLOWER_OUTAGE_SECONDS)
                await proxy.restore()
                result = await asyncio.wait_for(client.wait_run(ref.run_id, sid), 60)
                text = await asyncio.wait_for(streaming, 60)
                await asyncio.wait_for(following, 60)
            stored = await worker_store.events(sid, limit=10_000)
        finally:
            await client_store.close()
            await worker_store.close()
    assert result.status is RunStatus.COMPLETED
    assert text == result.output == TEXT
    # Every event exactly once, in order, though the follower lost the store mid-stream.
    # (up to run_completed, where the follower stopped).
    end = next(i for i, e in enumerate(stored) if e.id == delivered[-1].id)
    assert [e.id for e in delivered] == [e.id for e in stored[: end + 1]]
    assert delivered[-1].type.value == "run_completed"
    assert gap_free(stored)
    assert reports and {r.component for r in reports} == {"store"}


async def test_a_one_shot_read_fails_fast_with_the_store_code(
    pg_url: str, temporal: Client, task_queue: str
) -> None:
    parsed = make_url(pg_url)
    async with TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432) as proxy:
        store = await open_store(
            parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        )
        client = SessionClient(temporal, store, task_queue=task_queue, patience=Patience(seconds=0))
        try:
            await proxy.cut()
            with pytest.raises(AsmError) as info:
                async for _ in client.stream_events("ses_x", follow=False):
                    pass
        finally:
            await store.close()
    assert info.value.code == "storage_connection_failed"
    assert info.value.retryable


# --- the CLI ---------------------------------------------------------------------------------

NOWHERE_DB = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"


async def test_session_show_is_a_temporal_query_and_needs_no_store(
    env: WorkflowEnvironment, store: EventStore, task_queue: str, run_worker: Any
) -> None:
    e = cli_env(env, store, task_queue)
    async with run_worker():
        code, sid, err = await asm("session", "start", "--agent", "cli", env=e)
        assert code == 0, err
        sid = sid.strip()
        code, out, err = await asm(
            "session", "show", sid, env={**e, "ASM_DATABASE_URL": NOWHERE_DB}
        )
    assert code == 0, err
    assert sid in out and "status=active" in out


async def test_cli_exits_75_naming_temporal_when_it_is_unreachable(tmp_path: Path) -> None:
    code, out, err = await asm(
        "session",
        "show",
        "ses_x",
        env={"ASM_TEMPORAL_ADDRESS": "127.0.0.1:1", "ASM_DATABASE_URL": NOWHERE_DB},
    )
    assert code == 75
    assert "temporal_unavailable" in err and "127.0.0.1:1" in err
    assert out == ""


async def test_cli_json_error_names_the_store_and_exits_75() -> None:
    code, out, err = await asm("events", "ses_x", "--json", env={"ASM_DATABASE_URL": NOWHERE_DB})
    assert code == 75
    assert out == ""
    reported = json.loads(err.strip().splitlines()[-1])["error"]
    assert reported["code"] == "storage_connection_failed"
    assert reported["retryable"] is True


SDK_LOGS = """
import asyncio, os, sys
from temporalio.client import Client
from temporalio.service import RetryConfig
from agent_session_manager.cli.app import sdk_logs_to_stderr
from tests.fakes.tcp_proxy import TcpProxy

async def main() -> None:
    if sys.argv[2] == "cli":
        sdk_logs_to_stderr()
    async with TcpProxy.to(sys.argv[1]) as proxy:
        retries = RetryConfig(
            initial_interval_millis=10, max_interval_millis=20, max_retries=7,
            max_elapsed_time_millis=5000,
        )
        client = await Client.connect(proxy.address, retry_config=retries)
        await proxy.cut()
        try:
            await client.get_workflow_handle("x").describe()
        except Exception as exc:
            print("raised", type(exc).__name__, flush=True)
    await asyncio.sleep(0.5)  # the SDK forwards its log lines in batches
    sys.stderr.flush()
    os._exit(0)

asyncio.run(main())
"""


@pytest.mark.parametrize("runtime", ["sdk default", "cli"])
async def test_the_sdks_retry_warnings_stay_off_the_clis_stdout(
    env: WorkflowEnvironment, runtime: str
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SDK_LOGS,
        env.client.service_client.config.target_host,
        runtime,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    warned = "retried" in out.decode() + err.decode()
    assert warned, "the outage made the SDK warn (else this test shows nothing)"
    if runtime == "cli":
        assert out.decode() == "raised RPCError\n"
        assert "retried" in err.decode()
    else:  # what the CLI avoids: the SDK's own console logger writes to stdout
        assert "retried" in out.decode()


@given(
    seconds=st.one_of(st.none(), st.floats(0, 1e6)),
    waited=st.floats(0, 2e6),
    since_report=st.one_of(st.none(), st.floats(0, 1e3)),
    backoff=st.floats(0.01, 10),
    max_backoff=st.floats(0.01, 10),
)
def test_the_outage_policy_never_overstays_and_reports_on_schedule(
    seconds: float | None,
    waited: float,
    since_report: float | None,
    backoff: float,
    max_backoff: float,
) -> None:
    policy = Patience(
        seconds=seconds, initial_backoff=min(backoff, max_backoff), max_backoff=max_backoff
    )
    step = next_step(policy, waited, since_report, backoff)
    assert step.give_up is (seconds is not None and waited >= seconds)
    if step.give_up:
        return
    assert 0 <= step.delay <= backoff
    if seconds is not None:
        assert step.delay <= seconds - waited  # never sleeps past the patience
    assert step.report is (since_report is None or since_report >= policy.report_every)
    assert step.backoff <= max(max_backoff, backoff)
    assert step.backoff == min(backoff * 2, max_backoff)


#: Longer than the SDK's own retries inside a call as the CLI sets them (~3 s, CLI_SDK_RETRIES):
#: the CLI itself must wait, and say so.
CLI_OUTAGE_SECONDS = 6.0


async def test_asm_run_keeps_waiting_through_a_temporal_outage_and_says_so(
    env: WorkflowEnvironment,
    store: EventStore,
    task_queue: str,
    run_worker: Any,
    temporal_proxy: TcpProxy,
) -> None:
    e = {**cli_env(env, store, task_queue), "ASM_TEMPORAL_ADDRESS": temporal_proxy.address}
    script = json.dumps(SLOW.model_dump(mode="json"))
    async with run_worker():
        code, sid, err = await asm("session", "start", "--mock-script", script, env=e)
        assert code == 0, err
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent_session_manager.cli",
            "run",
            "go",
            "--session",
            sid.strip(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200", **e},
            cwd=REPO,
        )
        assert proc.stderr is not None
        submitted = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert submitted.startswith(b"run "), submitted  # submitted: now wait_run is waiting
        await temporal_proxy.cut()
        await asyncio.sleep(CLI_OUTAGE_SECONDS)
        await temporal_proxy.restore()
        out, rest = await asyncio.wait_for(proc.communicate(), 60)
    stderr = rest.decode()
    assert proc.returncode == 0, stderr
    assert out.decode().strip() == TEXT.strip()  # the result, and nothing else, on stdout
    assert f"Temporal at {temporal_proxy.address} unreachable (" in stderr
    assert "retrying for" in stderr
    assert "completed" in stderr


async def test_asm_events_follow_keeps_tailing_through_a_store_outage_and_says_so(
    pg_url: str, temporal: Client, task_queue: str
) -> None:
    parsed = make_url(pg_url)
    async with TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432) as proxy:
        proxied_url = parsed.set(host="127.0.0.1", port=proxy.port)
        worker_store = await open_store(pg_url)
        client = SessionClient(temporal, worker_store, task_queue=task_queue)
        worker = serve(
            temporal, worker_store, task_queue=task_queue, providers=discover(), secrets={}
        )
        try:
            async with worker:
                sid = (await client.start_session(SessionSpec(agent_id="pg", mock=SLOW))).session_id
                follower = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "agent_session_manager.cli",
                    "events",
                    sid,
                    "--follow",
                    "--json",
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env={
                        **os.environ,
                        "COLUMNS": "200",
                        "ASM_DATABASE_URL": proxied_url.render_as_string(hide_password=False),
                    },
                    cwd=REPO,
                )
                assert follower.stdout is not None and follower.stderr is not None
                ref = await client.submit_run(sid, "go")
                seen: list[dict[str, Any]] = []
                first = await asyncio.wait_for(follower.stdout.readline(), 60)
                seen.append(json.loads(first))
                await proxy.cut()  # the follower is tailing: take its database away
                await asyncio.sleep(FOLLOWER_OUTAGE_SECONDS)
                await proxy.restore()
                async with asyncio.timeout(60):
                    while not any(
                        ev["type"] == "run_completed" and ev["run_id"] == ref.run_id for ev in seen
                    ):
                        seen.append(json.loads(await follower.stdout.readline()))
                follower.terminate()
                _, err = await follower.communicate()
            stored = await worker_store.events(sid, limit=10_000)
        finally:
            await worker_store.close()
    assert [ev["seq"] for ev in seen] == [e.seq for e in stored[: len(seen)]]
    assert [ev["seq"] for ev in seen] == list(range(1, len(seen) + 1))
    assert f"the event store at {proxied_url.render_as_string()} unreachable (" in err.decode()
