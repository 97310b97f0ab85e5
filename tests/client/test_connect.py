"""``SessionClient.connect()``: a client from the environment, like the ``temporal`` CLI's; and
``stream_text``'s typed pieces, which print as themselves across a retried attempt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.client.connect import DEFAULT_ADDRESS, resolve
from agent_session_manager.client.session_client import (
    Reset,
    SessionClient,
    TextDelta,
    ThinkingDelta,
)
from agent_session_manager.core.contract import (
    MockError,
    MockScript,
    MockText,
    MockThinking,
    RetrySettings,
)
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.protocol import DEFAULT_TASK_QUEUE
from agent_session_manager.core.status import RunStatus, SessionStatus
from agent_session_manager.store import DEFAULT_DATABASE_URL, EventStore
from agent_session_manager.worker.dev_server import free_port

#: Variables of the developer's shell that would leak into the environment under test.
_PREFIXES = ("ASM_", "TEMPORAL_")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No ``ASM_*``/``TEMPORAL_*`` from the outer shell, and no ``temporal`` config file."""
    import os

    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "no-such-temporal.toml"))
    return monkeypatch


NO_FILE = {"TEMPORAL_CONFIG_FILE": "/nonexistent/temporal.toml"}


# --- against the real dev server -------------------------------------------------------------


async def test_connect_reads_the_environment_and_runs_a_session(
    clean_env: pytest.MonkeyPatch,
    env: WorkflowEnvironment,
    store: EventStore,
    task_queue: str,
    run_worker: Any,
    tmp_path: Path,
) -> None:
    clean_env.setenv("TEMPORAL_ADDRESS", env.client.service_client.config.target_host)
    clean_env.setenv("TEMPORAL_NAMESPACE", env.client.namespace)
    clean_env.setenv("ASM_TASK_QUEUE", task_queue)
    clean_env.setenv("ASM_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}")
    async with run_worker():
        async with await SessionClient.connect() as client:
            assert client.temporal_address == env.client.service_client.config.target_host
            assert client.task_queue == task_queue
            view = await client.start_session(agent_id="from-env", provider="mock")
            result = await client.run(view.session_id, "hello")
            assert result.status is RunStatus.COMPLETED
            final = await client.complete_session(view.session_id)
            assert final.status is SessionStatus.COMPLETED
            opened = client.require_store()
        # The store connect() opened is closed with the client; the events are in the
        # worker's store, which is the same database.
        assert client._owns_store is False
        assert opened is not store
        events = await store.events(view.session_id)
        assert events[0].type.value == "session_created"


async def test_keyword_arguments_override_a_wrong_environment(
    clean_env: pytest.MonkeyPatch, env: WorkflowEnvironment
) -> None:
    clean_env.setenv("ASM_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")  # nobody there
    client = await SessionClient.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        with_store=False,
    )
    assert client.store is None
    assert await client.list_sessions(limit=1) is not None


async def test_an_unreachable_address_is_temporal_unavailable(
    clean_env: pytest.MonkeyPatch,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    clean_env.setenv("ASM_TEMPORAL_ADDRESS", address)
    with pytest.raises(AsmError) as caught:
        await SessionClient.connect(with_store=False)
    err = caught.value
    assert err.code == "temporal_unavailable"
    assert err.retryable
    assert address in err.message and "ASM_TEMPORAL_ADDRESS" in err.message
    assert err.details["address_from"] == "ASM_TEMPORAL_ADDRESS"


# --- precedence (pure: resolve) ---------------------------------------------------------------


def test_defaults_are_the_dev_server_and_the_local_store() -> None:
    s = resolve(environ=NO_FILE)
    assert (s.address, s.namespace, s.task_queue, s.database_url) == (
        DEFAULT_ADDRESS,
        "default",
        DEFAULT_TASK_QUEUE,
        DEFAULT_DATABASE_URL,
    )
    assert s.tls is False and s.api_key is None
    assert s.sources["address"] == "default"


def test_asm_variables_win_over_temporal_ones_and_keywords_over_both() -> None:
    environ = {
        **NO_FILE,
        "TEMPORAL_ADDRESS": "temporal.example:7233",
        "ASM_TEMPORAL_ADDRESS": "asm.example:7233",
        "TEMPORAL_NAMESPACE": "temporal-ns",
        "ASM_NAMESPACE": "asm-ns",
    }
    s = resolve(environ=environ)
    assert (s.address, s.namespace) == ("asm.example:7233", "asm-ns")
    assert s.sources["address"] == "ASM_TEMPORAL_ADDRESS"
    only_temporal = {k: v for k, v in environ.items() if not k.startswith("ASM_")}
    s = resolve(environ=only_temporal)
    assert (s.address, s.namespace) == ("temporal.example:7233", "temporal-ns")
    assert s.sources == {**s.sources, "address": "TEMPORAL_ADDRESS"}
    s = resolve("kw.example:1234", namespace="kw-ns", environ=environ)
    assert (s.address, s.namespace, s.sources["address"]) == ("kw.example:1234", "kw-ns", "address")


def test_blank_variables_count_as_unset() -> None:
    s = resolve(environ={**NO_FILE, "ASM_TEMPORAL_ADDRESS": "  ", "TEMPORAL_ADDRESS": "t:1"})
    assert s.address == "t:1"


def test_an_api_key_turns_tls_on_unless_tls_is_turned_off() -> None:
    cloud = {
        **NO_FILE,
        "TEMPORAL_ADDRESS": "ns.acct.tmprl.cloud:7233",
        "TEMPORAL_API_KEY": "sekrit-1",
    }
    s = resolve(environ=cloud)
    assert s.api_key == "sekrit-1" and s.tls is not False
    assert "sekrit" not in repr(s)  # a secret is never printed
    assert resolve(environ={**cloud, "TEMPORAL_TLS": "false"}).tls is False
    assert resolve(environ=cloud, tls=False).tls is False


def test_the_store_url_and_queue_come_from_asm_variables() -> None:
    s = resolve(
        environ={**NO_FILE, "ASM_DATABASE_URL": "sqlite+aiosqlite:///x.db", "ASM_TASK_QUEUE": "q"}
    )
    assert (s.database_url, s.task_queue) == ("sqlite+aiosqlite:///x.db", "q")
    s = resolve(environ={**NO_FILE, "ASM_TASK_QUEUE": "q"}, task_queue="mine")
    assert s.task_queue == "mine"


# --- bad values: typed, naming the variable -------------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_address_is_used_or_refused_typed(value: str) -> None:
    try:
        s = resolve(environ={**NO_FILE, "ASM_TEMPORAL_ADDRESS": value})
    except AsmError as err:
        assert err.code == "validation_error"
        assert err.message.startswith("ASM_TEMPORAL_ADDRESS:")
        return
    assert s.address == (value.strip() or DEFAULT_ADDRESS)


@pytest.mark.parametrize(
    "value", ["localhost", "http://localhost:7233", "host:0", "host:70000", "a b:1", ":7233"]
)
def test_malformed_addresses_are_refused(value: str) -> None:
    with pytest.raises(AsmError) as caught:
        resolve(environ={**NO_FILE, "TEMPORAL_ADDRESS": value})
    assert caught.value.code == "validation_error"
    assert "TEMPORAL_ADDRESS" in caught.value.message


@settings(max_examples=100)
@given(
    name=st.sampled_from(["ASM_NAMESPACE", "TEMPORAL_NAMESPACE", "ASM_TASK_QUEUE"]),
    value=st.text(min_size=1, max_size=1200),
)
def test_any_namespace_or_queue_is_used_or_refused_typed(name: str, value: str) -> None:
    try:
        s = resolve(environ={**NO_FILE, name: value})
    except AsmError as err:
        assert err.code == "validation_error"
        assert err.message.startswith(f"{name}:")
        return
    if not value.strip():  # blank is unset: the default
        assert (s.namespace, s.task_queue) == ("default", DEFAULT_TASK_QUEUE)
    else:
        assert value.strip() in (s.namespace, s.task_queue)


@settings(max_examples=50)
@given(
    st.text(min_size=1, max_size=40).filter(
        lambda v: v.strip().lower() not in {"1", "0", "true", "false", "yes", "no"}
    )
)
def test_a_tls_switch_that_is_not_a_boolean_is_refused(value: str) -> None:
    if not value.strip():
        return  # blank is unset
    with pytest.raises(AsmError) as caught:
        resolve(environ={**NO_FILE, "TEMPORAL_TLS": value})
    assert caught.value.code == "validation_error"
    assert "TEMPORAL_TLS" in caught.value.message


def test_missing_certificate_files_and_unknown_profiles_are_typed(tmp_path: Path) -> None:
    with pytest.raises(AsmError) as caught:
        resolve(environ={**NO_FILE, "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "no.pem")})
    assert caught.value.code == "validation_error"
    assert "TEMPORAL_TLS" in caught.value.message
    with pytest.raises(AsmError) as caught:
        resolve(environ={**NO_FILE, "TEMPORAL_PROFILE": "nope"})
    assert caught.value.code == "validation_error"
    assert "TEMPORAL_PROFILE" in caught.value.message


async def test_connect_refuses_a_bad_value_before_connecting(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("TEMPORAL_ADDRESS", "no port here")
    with pytest.raises(AsmError) as caught:
        await SessionClient.connect()
    assert caught.value.code == "validation_error"


# --- stream_text's pieces -------------------------------------------------------------------


async def test_pieces_across_a_retried_attempt_print_as_a_readable_restart(
    client: SessionClient, run_worker: Any
) -> None:
    script = MockScript(
        steps=[
            MockThinking(text="hmm"),
            MockText(text="half an "),
            MockError(code="provider_unavailable", message="overloaded", attempts=[1]),
            MockText(text="answer"),
        ]
    )
    retry = RetrySettings(initial_interval_seconds=0.1)
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=script, retry=retry)).session_id
        ref = await client.submit_run(sid, "go")
        pieces = [p async for p in client.stream_text(sid, ref.run_id)]
        with_thinking = [p async for p in client.stream_text(sid, ref.run_id, thinking=True)]
    # Deltas may coalesce in the store's batches: compare the text each attempt streamed.
    resets = [i for i, p in enumerate(pieces) if isinstance(p, Reset)]
    assert len(resets) == 1 and pieces[resets[0]] == Reset(attempt=2)
    before, after = pieces[: resets[0]], pieces[resets[0] + 1 :]
    assert all(isinstance(p, TextDelta) and p.attempt == 1 for p in before)
    assert all(isinstance(p, TextDelta) and p.attempt == 2 for p in after)
    assert "".join(str(p) for p in before) == "half an "
    assert "".join(str(p) for p in after) == "half an answer"
    restart = pieces[resets[0]]
    assert isinstance(restart, Reset)
    assert restart.reason == "provider_unavailable: overloaded"
    printed = "".join(str(p) for p in pieces)
    assert printed == (
        "half an \n[retrying after provider_unavailable: overloaded: attempt 2 starts over]\n"
        "half an answer"
    )
    kinds = [type(p) for p in with_thinking]
    # Thinking first in each attempt, then its text; one Reset between the attempts.
    assert kinds[0] is ThinkingDelta and kinds.count(Reset) == 1
    assert kinds[kinds.index(Reset) + 1] is ThinkingDelta
    assert [p for p in with_thinking if not isinstance(p, ThinkingDelta)] == pieces
    assert str(with_thinking[0]) == "hmm"
