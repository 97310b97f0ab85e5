"""The embedded Temporal server gets an environment without our telemetry settings, refuses a
busy port, reports a server that dies at start with its own words, and starts again on fresh
ports when one of the ports it picked was taken meanwhile."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from agent_session_manager.core.errors import AsmError
from agent_session_manager.worker.dev_server import (
    STARTUP_ATTEMPTS,
    free_port,
    server_environ,
    start_dev_server,
)
from agent_session_manager.worker.settings import SECRET_ENV_VARS

names = st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True)
values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)


@given(st.dictionaries(names, values, max_size=12))
def test_server_environ_drops_exactly_otel_asm_and_provider_secrets(env: dict[str, str]) -> None:
    env = {**env, "OTEL_TRACES_EXPORTER": "console", "ASM_PROMETHEUS_BIND": "x", "PATH": "/bin"}
    child = server_environ(env)
    for key, value in env.items():
        ours = key.startswith(("OTEL_", "ASM_")) or key in SECRET_ENV_VARS
        assert (key in child) is not ours, key
        if not ours:
            assert child[key] == value


def _environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode().partition("=") for item in raw.split(b"\0") if item)
    return {k: v for k, _, v in pairs}


async def test_a_real_server_starts_without_our_telemetry_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `console` is what the Go server cannot do: inherited, it would exit at start.
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    monkeypatch.setenv("ASM_PROMETHEUS_BIND", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("ASM_LOG_FORMAT", "json")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-never-for-the-server")
    server = await start_dev_server(home=str(tmp_path), ui=False)
    try:
        child = _environ_of(server.pid)
        await server.client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )
    finally:
        await server.shutdown()
    assert not [k for k in child if k.startswith(("OTEL_", "ASM_"))], sorted(child)
    assert "ANTHROPIC_API_KEY" not in child
    assert "PATH" in child
    assert (tmp_path / "temporal.db").is_file()
    assert (tmp_path / "temporal.log").is_file()
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(server.pid, 0)


async def test_a_busy_port_is_refused_before_starting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AsmError) as caught:
            await start_dev_server(home=None, port=port, ui=False)
    assert caught.value.code == "already_exists"
    assert f"127.0.0.1:{port} is already in use" in caught.value.message


async def test_a_server_that_exits_at_start_is_reported_with_its_log() -> None:
    with pytest.raises(AsmError) as caught:
        await start_dev_server(home=None, ui=False, extra_args=["--no-such-flag"])
    assert caught.value.code == "provider_unavailable"
    assert "exited (code" in caught.value.message
    assert "no-such-flag" in caught.value.message  # the server's own complaint


def test_a_free_port_is_given_to_no_bind_0_yet_binds_with_so_reuseaddr() -> None:
    ours = {free_port() for _ in range(50)}
    # Merely closed, 50 ports of the ~28k ephemeral ones would come back ~50 times in 30k.
    for _ in range(30_000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            assert s.getsockname()[1] not in ours
    with socket.socket() as listener:  # as the Go server, PostgreSQL, asyncio servers bind
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", ours.pop()))
        listener.listen()


@contextmanager
def _taken_port() -> Iterator[socket.socket]:
    """A port something listens on; the server is made to collide with it by --http-port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken


class _OnRetry(logging.Handler):
    """Counts the retry warnings; on the first, frees the taken port (the next start fits)."""

    def __init__(self, taken: socket.socket | None = None) -> None:
        super().__init__()
        self.taken = taken
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if self.taken is not None:
            self.taken.close()


@contextmanager
def _retries(taken: socket.socket | None = None) -> Iterator[_OnRetry]:
    handler = _OnRetry(taken)
    logger = logging.getLogger("agent_session_manager.worker")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def test_a_port_taken_at_start_is_retried_on_fresh_ports_then_reported() -> None:
    with _taken_port() as taken, _retries() as retries:
        busy = taken.getsockname()[1]
        with pytest.raises(AsmError) as caught:
            await start_dev_server(home=None, ui=False, extra_args=["--http-port", str(busy)])
    assert caught.value.code == "provider_unavailable"
    assert caught.value.details["starts"] == STARTUP_ATTEMPTS
    assert f"start {STARTUP_ATTEMPTS} of {STARTUP_ATTEMPTS}" in caught.value.message
    assert f"{busy}: bind: address already in use" in caught.value.message  # the server's words
    assert len(retries.messages) == STARTUP_ATTEMPTS - 1
    assert all("address already in use" in m for m in retries.messages)


async def test_a_port_taken_at_start_is_not_retried_when_the_caller_chose_the_port() -> None:
    with _taken_port() as taken, _retries() as retries:
        busy = taken.getsockname()[1]
        with pytest.raises(AsmError) as caught:
            await start_dev_server(
                home=None, port=free_port(), ui=False, extra_args=["--http-port", str(busy)]
            )
    assert caught.value.code == "provider_unavailable"
    assert caught.value.details["starts"] == 1
    assert "exited (code" in caught.value.message
    assert f"{busy}: bind: address already in use" in caught.value.message
    assert retries.messages == []


async def test_a_start_that_found_a_port_taken_is_followed_by_one_that_runs(
    tmp_path: Path,
) -> None:
    with _taken_port() as taken, _retries(taken) as retries:
        busy = taken.getsockname()[1]
        # The pinned --http-port stays; freed on the first retry warning, the second start fits.
        server = await start_dev_server(
            home=str(tmp_path), ui=False, extra_args=["--http-port", str(busy)]
        )
    try:
        await server.client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )
    finally:
        await server.shutdown()
    assert len(retries.messages) == 1
    # The log is the running server's: the failed start is in the warning, not in the file.
    assert "address already in use" not in (tmp_path / "temporal.log").read_text()
